"""The scale curve (issue #27): what kNN costs and finds as the pool grows, on each engine.

Pools. Encoding a million real passages is out of reach on 2 cores, so a pool of N vectors is
the real XQuAD-R pool (13,014 sentences encoded by the default int8 model) followed by
N - 13,014 synthetic vectors drawn around it: each is `w*a + (1-w)*b + e`, renormalised, with
`a` and `b` two real vectors of one language, `w` uniform in [0.5, 1] and `e` Gaussian noise of
a quarter of the real vectors' per-dimension spread. They sit in the same cone, language
clusters and density profile as the real ones (nothing is drawn from outside it), so a query's
neighbourhood fills up as the pool grows, as a real corpus would. Queries are real XQuAD-R
questions; the truth is exact search over the same pool (numpy).

Per engine, index option and size: bulk ingest of the precomputed vectors through `ingest`
(the JSONL path's code, streamed: flat memory), force-merge to one segment, p50/p99 of one kNN
search at k=10 with XLIR's default num_candidates, recall@10 against exact, the smallest
num_candidates reaching recall@10 >= .98, JVM heap, the index's vector files by role (graph,
quantized, float) read from the node's data directory, and the store size.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xlir_plugin.engines import EngineApiError, engine_of
from xlir_plugin.index import delete_index
from xlir_plugin.ingest import ingest
from xlir_plugin.schema import QUANTIZED_TYPES
from xlir_plugin.search import default_num_candidates, search_vector, search_vectors

K = 10
TARGET_RECALL = 0.98
CANDIDATES = (10, 20, 50, 100, 200, 500, 1000, 2000)
#: rescore oversample factors tried on quantized options (the default is 3)
OVERSAMPLES = (3.0, 5.0, 10.0)
#: the index options measured per engine (OpenSearch's lucene engine: float and int8 HNSW,
#: see engines/opensearch)
OPTIONS = {
    "elasticsearch": ("int8_hnsw", "hnsw", "bbq_hnsw"),
    "opensearch": ("hnsw", "int8_hnsw"),
}
#: Lucene's vector files by what they hold (the rest, e.g. metadata, is small)
FILE_ROLES = {".vex": "graph", ".veq": "quantized", ".veb": "quantized", ".vec": "float"}


def grow_pool(
    real: np.ndarray, langs: list[str], size: int, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """`size` vectors: the real ones first, then synthetic ones around them (module doc)."""
    real = np.asarray(real, dtype=np.float32)
    if size <= len(real):
        return real[:size], langs[:size]
    rng = np.random.default_rng(seed)
    by_lang: dict[str, np.ndarray] = {}
    for lang in sorted(set(langs)):
        by_lang[lang] = np.flatnonzero(np.asarray(langs) == lang)
    spread = real.std(axis=0) * 0.25
    names = sorted(by_lang)
    extra = size - len(real)
    picked = rng.choice(len(names), size=extra)
    out = np.empty((extra, real.shape[1]), dtype=np.float32)
    for li, lang in enumerate(names):
        rows = np.flatnonzero(picked == li)
        pool = by_lang[lang]
        a = real[rng.choice(pool, size=len(rows))]
        b = real[rng.choice(pool, size=len(rows))]
        w = rng.uniform(0.5, 1.0, size=(len(rows), 1)).astype(np.float32)
        noise = rng.normal(size=(len(rows), real.shape[1])).astype(np.float32) * spread
        mixed = w * a + (1 - w) * b + noise
        out[rows] = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
    return np.concatenate([real, out]), langs + [names[i] for i in picked]


def exact_tenth(pool: np.ndarray, queries: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """Each query's exact 10th-best similarity over the pool (in chunks: flat memory)."""
    best = np.full((len(queries), K), -np.inf, dtype=np.float32)
    for start in range(0, len(pool), chunk):
        sims = queries @ pool[start : start + chunk].T
        both = np.concatenate([best, sims], axis=1)
        best = -np.partition(-both, K - 1, axis=1)[:, :K]
    return best.min(axis=1)


def recall_at_10(pool, queries, tenth, found: list[list[int]]) -> float:
    """Mean recall@10; a hit scoring at least the exact 10th best counts (ties are arbitrary)."""
    per_query = []
    for q, rows in enumerate(found):
        sims = pool[rows] @ queries[q] if rows else np.zeros(0)
        per_query.append(min(K, int(np.sum(sims >= tenth[q] - 1e-5))) / K)
    return float(np.mean(per_query))


def pool_documents(vectors: np.ndarray, langs: list[str]) -> Iterator[dict[str, Any]]:
    """The pool as the JSONL path's documents, each with its precomputed `embedding`."""
    for i, (vector, lang) in enumerate(zip(vectors, langs, strict=True)):
        yield {"id": f"v{i}", "lang": lang, "text": f"vector {i}", "embedding": vector.tolist()}


@dataclass
class Row:
    """One engine x index option x pool size."""

    engine: str
    option: str
    size: int
    ingest_docs_per_s: float = 0.0
    seconds_to_merged: float = 0.0  # ingest + force-merge to one segment
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    num_candidates: int = 0
    recall_at_10: float = 0.0
    candidates_for_target: int | None = None  # the smallest reaching TARGET_RECALL
    recall_by_candidates: dict[int, float] = field(default_factory=dict)
    #: quantized options: recall@10 at the default num_candidates by rescore oversample factor
    recall_by_oversample: dict[float, float] = field(default_factory=dict)
    heap_used_mb: float = 0.0
    files_mb: dict[str, float] = field(default_factory=dict)  # graph / quantized / float
    store_mb: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(client, encoder, option: str, vectors, langs, queries, tenth, rounds=200) -> Row:
    """Index the pool with `option`, measure it (module doc), delete the index."""
    engine = engine_of(client)
    row = Row(engine.name, option, len(vectors))
    name = f"xlir-bench-scale-{uuid.uuid4().hex[:8]}"
    try:
        start = time.perf_counter()
        docs = pool_documents(vectors, langs)
        report = ingest(client, name, encoder, docs, progress=True, index_options=option)
        assert report.failed == 0 and report.indexed == len(vectors), report.summary()
        ingested = time.perf_counter() - start
        force_merge(client, name)
        row.ingest_docs_per_s = round(len(vectors) / ingested, 1)
        row.seconds_to_merged = round(time.perf_counter() - start, 1)
        latency(client, name, queries, row, rounds)
        for n in CANDIDATES:
            hits = search_vectors(client, name, queries, k=K, num_candidates=n, source=())
            found = [[int(h.id[1:]) for h in one] for one in hits]
            row.recall_by_candidates[n] = round(recall_at_10(vectors, queries, tenth, found), 4)
            if n == row.num_candidates:
                row.recall_at_10 = row.recall_by_candidates[n]
        if option in QUANTIZED_TYPES and engine.rescores:
            for factor in OVERSAMPLES:
                hits = search_vectors(client, name, queries, k=K, rescore=factor, source=())
                found = [[int(h.id[1:]) for h in one] for one in hits]
                recall = recall_at_10(vectors, queries, tenth, found)
                row.recall_by_oversample[factor] = round(recall, 4)
        reached = [n for n, r in row.recall_by_candidates.items() if r >= TARGET_RECALL]
        row.candidates_for_target = min(reached) if reached else None
        memory(client, name, row)
    finally:
        delete_index(client, name)
    return row


def force_merge(client, index: str) -> None:
    """One segment, waited for as a task: a merge of a million vectors outlasts any request
    timeout (both engines run `_forcemerge?wait_for_completion=false` as a task)."""
    engine = engine_of(client)
    params = {"max_num_segments": "1", "wait_for_completion": "false"}
    task = engine.request(client, "POST", f"/{index}/_forcemerge", None, params)["task"]
    while True:
        try:  # the engines wait up to 30 s by default (opensearch-py takes `timeout` as its own)
            wait = {"wait_for_completion": "true"}
            if engine.request(client, "GET", f"/_tasks/{task}", None, wait).get("completed"):
                break
        except EngineApiError as exc:  # not done within the wait: ask again
            if exc.status_code == 404:  # finished and no longer listed (no task result index)
                break
            if exc.status_code != 408 and "timeout" not in f"{exc.message} {exc.body}".lower():
                raise
    engine.refresh(client, index)
    shards = engine.request(client, "GET", f"/{index}/_segments", None, None)["indices"][index]
    segments = [len(copy["segments"]) for shard in shards["shards"].values() for copy in shard]
    assert max(segments) == 1, f"{index}: {segments} segments after the force merge"


def latency(client, index: str, queries: np.ndarray, row: Row, rounds: int) -> None:
    """p50/p99 of one kNN search (k 10, the default num_candidates), after a warm-up."""
    row.num_candidates = default_num_candidates(K)
    for q in queries[:20]:
        search_vector(client, index, q, k=K, source=())
    times = []
    for i in range(rounds):
        t = time.perf_counter()
        search_vector(client, index, queries[i % len(queries)], k=K, source=())
        times.append(time.perf_counter() - t)
    row.p50_ms = round(float(np.percentile(times, 50)) * 1000, 2)
    row.p99_ms = round(float(np.percentile(times, 99)) * 1000, 2)


def memory(client, index: str, row: Row) -> None:
    """Heap used, the index's vector files by role, and its store size."""
    engine = engine_of(client)
    stats = engine.request(client, "GET", "/_nodes/stats/jvm,fs", None, None)["nodes"]
    node = next(iter(stats.values()))
    row.heap_used_mb = round(node["jvm"]["mem"]["heap_used_in_bytes"] / 2**20, 1)
    settings = engine.get_settings(client, index)
    uuid_ = settings[index]["settings"]["index"]["uuid"]
    sizes: dict[str, float] = {}
    for data in node["fs"].get("data", []):
        for path in Path(data["path"]).glob(f"**/indices/{uuid_}/**/*"):
            entries = compound_entries(path) if path.suffix == ".cfe" else {path.suffix: None}
            for suffix, length in entries.items():
                role = FILE_ROLES.get(suffix)
                if role:
                    size = path.stat().st_size if length is None else length
                    sizes[role] = sizes.get(role, 0.0) + size / 2**20
    row.files_mb = {k: round(v, 1) for k, v in sorted(sizes.items())}
    store = engine.request(client, "GET", f"/{index}/_stats/store", None, None)
    row.store_mb = round(store["_all"]["primaries"]["store"]["size_in_bytes"] / 2**20, 1)


def compound_entries(cfe: Path) -> dict[str, int]:
    """The files packed in a Lucene compound segment (`.cfs`), suffix -> length, from its
    entries table (`.cfe`: a codec header, a vint count, then name, offset, length each; Lucene
    9+ writes numbers little-endian). Small segments are compound; their vector files still
    count."""
    data = cfe.read_bytes()
    pos = 4  # the header's magic

    def vint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    def string() -> str:
        nonlocal pos
        n = vint()
        pos += n
        return data[pos - n : pos].decode()

    string()  # codec name
    pos += 4 + 16  # version (big-endian int), segment id
    pos += 1 + data[pos]  # suffix: one length byte + bytes
    entries: dict[str, int] = {}
    for _ in range(vint()):
        name = string()
        pos += 8  # offset
        length = int.from_bytes(data[pos : pos + 8], "little")
        pos += 8
        suffix = "." + name.rsplit(".", 1)[-1]
        entries[suffix] = entries.get(suffix, 0) + length
    return entries
