"""`evaluate`: encode a LAReQA set once, rank with numpy and Elasticsearch, score like the paper.

Macro-averaging (PAPER.md): Mono = mean over query languages X of mAP(X -> X); Cross = mean
over all pairs (X, Y != X) of mAP(X -> Y); Multi = mean over X of mAP(X -> pool of all
languages). Per-language rows: Cross(X) = mean over Y of mAP(X -> Y); R@1 mono, R@1 cross
(mean over Y), R@10 multi; rank distance(X) = mean over X's queries with at least two
relevant candidates in the pool of (max rank - min rank), computed on the exact backend only
(it needs full ranks). A query is scored in a setting only when it has a relevant candidate
there (questions missing in language Y are skipped for X -> Y).
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .data import LareqaData, first_questions, load_lareqa
from .metrics import rank_distance
from .retrieval import MULTI, BackendRun, Layout, es_backend, exact_backend, top_overlap

COLUMNS = ["mono", "cross", "multi", "r1_mono", "r1_cross", "r10_multi", "rank_distance"]
HEADERS = ["Mono", "Cross", "Multi", "R@1 mono", "R@1 cross", "R@10 multi", "rank dist"]
BACKENDS = ("exact", "es")


@dataclass
class BackendResult:
    """Macro-averaged figures of one backend, per query language and overall."""

    map_metric: str  # the ranx measure behind Mono/Cross/Multi, e.g. "map" or "map@100"
    per_lang: dict[str, dict[str, float]]
    mean: dict[str, float]
    cross_map: dict[str, dict[str, float]]  # query lang -> candidate lang -> mAP (diag: Mono)
    queries: dict[str, int]  # evaluated (query, setting) pairs: mono, cross, multi
    seconds: float = 0.0


@dataclass
class EvalResult:
    model: str
    data: str
    candidates: int
    queries: int
    languages: list[str]
    settings: dict[str, Any]
    backends: dict[str, BackendResult] = field(default_factory=dict)
    gap: dict[str, float] = field(default_factory=dict)  # ES vs exact
    timings: dict[str, float] = field(default_factory=dict)  # seconds
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _finite(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    def to_markdown(self) -> str:
        lines = [f"# {self.model} on {self.data}", ""]
        lines.append(
            f"{self.queries} queries, {self.candidates} candidates, "
            f"{len(self.languages)} languages; settings: "
            + ", ".join(f"{k}={v}" for k, v in self.settings.items())
        )
        for name, res in self.backends.items():
            lines += ["", f"## {name}: mAP = ranx `{res.map_metric}` ({res.seconds:.0f} s)", ""]
            lines.append("| query lang | " + " | ".join(HEADERS) + " |")
            lines.append("|---" * (len(HEADERS) + 1) + "|")
            for lang, row in [*res.per_lang.items(), ("**mean**", res.mean)]:
                cells = [_fmt(row.get(c), c) for c in COLUMNS]
                lines.append(f"| {lang} | " + " | ".join(cells) + " |")
        if self.gap:
            lines += ["", "## Elasticsearch vs exact", ""]
            lines.append("| measure | value |")
            lines.append("|---|---|")
            lines += [
                f"| {k} | {v:+.4f} |" if "delta" in k else f"| {k} | {v:.4f} |"
                for k, v in self.gap.items()
            ]
        if self.timings:
            lines += [
                "",
                "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in self.timings.items()),
            ]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None, column: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1f}" if column == "rank_distance" else f"{value:.3f}"


def _finite(obj: Any) -> Any:
    """JSON has no NaN: write null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _mean(values) -> float:
    values = np.asarray(list(values), dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def score(run: BackendRun, map_metric: str, layout: Layout) -> BackendResult:
    """Per-language rows and the paper's macro averages (Cross: over all language pairs)."""
    per_lang: dict[str, dict[str, float]] = {}
    cross_map: dict[str, dict[str, float]] = {}
    pair_map: list[float] = []
    pair_r1: list[float] = []
    counts = {"mono": 0, "cross": 0, "multi": 0}
    for x in layout.query_side:
        present = {
            y: s for (qx, y), s in run.settings.items() if qx == x and y != MULTI and len(s.rows)
        }
        cross_map[x] = {y: _mean(s.scores[map_metric]) for y, s in present.items()}
        others = [y for y in present if y != x]
        r1 = {y: _mean(s.scores["recall@1"]) for y, s in present.items()}
        pair_map += [cross_map[x][y] for y in others]
        pair_r1 += [r1[y] for y in others]
        counts["mono"] += len(present[x].rows) if x in present else 0
        counts["cross"] += sum(len(present[y].rows) for y in others)
        row = {
            "mono": cross_map[x].get(x, np.nan),
            "cross": _mean(cross_map[x][y] for y in others),
            "r1_mono": r1.get(x, np.nan),
            "r1_cross": _mean(r1[y] for y in others),
            "multi": np.nan,
            "r10_multi": np.nan,
            "rank_distance": np.nan,
        }
        multi = run.settings.get((x, MULTI))
        if multi is not None and len(multi.rows):
            counts["multi"] += len(multi.rows)
            row["multi"] = _mean(multi.scores[map_metric])
            row["r10_multi"] = _mean(multi.scores["recall@10"])
        if x in run.multi_ranks:
            ranks = run.multi_ranks[x]
            several = np.sum(~np.isnan(ranks), axis=1) >= 2
            row["rank_distance"] = _mean(rank_distance(ranks[several]))
        per_lang[x] = {k: float(v) for k, v in row.items()}
    mean = {c: _mean(r[c] for r in per_lang.values()) for c in COLUMNS}
    mean["cross"] = _mean(pair_map)  # macro over the (X, Y) pairs, as the paper does
    mean["r1_cross"] = _mean(pair_r1)
    return BackendResult(map_metric, per_lang, mean, cross_map, counts, run.seconds)


def _gap(exact: BackendRun, approx: BackendRun, layout: Layout, es_map: str, full_map: str):
    """ES minus exact: at the same depth (the ANN effect alone) and against full-depth exact;
    ANN recall@10 = share of the exact top 10 that Elasticsearch also returns in its top 10."""
    es_res = score(approx, es_map, layout).mean
    same_depth = score(exact, es_map, layout).mean
    full = score(exact, full_map, layout).mean
    gap: dict[str, float] = {}
    for c in ("mono", "cross", "multi"):
        gap[f"{c}_map_delta_same_depth"] = es_res[c] - same_depth[c]
        gap[f"{c}_map_delta_vs_full"] = es_res[c] - full[c]
    kinds: dict[str, list[np.ndarray]] = {"mono": [], "cross": [], "multi": []}
    for (x, y), ref in exact.settings.items():
        if (x, y) in approx.settings:
            kind = "multi" if y == MULTI else "mono" if y == x else "cross"
            kinds[kind].append(top_overlap(ref, approx.settings[(x, y)]))
    for kind, parts in kinds.items():
        if parts:
            gap[f"{kind}_ann_recall_at_10"] = _mean(np.concatenate(parts))
    return gap


def metrics_for(depth: int | None, es_depth: int | None = None) -> tuple[str, list[str]]:
    """The mAP measure name and the ranx measures to compute."""
    full = "map" if depth is None else f"map@{depth}"
    names = [full, "recall@1", "recall@10"]
    if es_depth is not None and f"map@{es_depth}" != full:
        names.append(f"map@{es_depth}")
    return full, names


def evaluate_vectors(
    data: LareqaData,
    queries: np.ndarray,
    cands: np.ndarray,
    *,
    model: str = "vectors",
    manifest=None,
    es=None,
    backends: Sequence[str] = BACKENDS,
    depth: int | None = None,
    es_depth: int = 100,
    num_candidates: int | None = None,
    index: str | None = None,
    keep_index: bool = False,
    index_options: dict | str | None = None,
    data_name: str = "",
    progress: bool = True,
) -> EvalResult:
    """The evaluation core over precomputed vectors (rows aligned with data.questions and
    data.candidates; L2-normalised so that dot product = cosine, the index's similarity)."""
    backends = tuple(backends)
    unknown = set(backends) - set(BACKENDS)
    if unknown or not backends:
        raise ValueError(f"backends must be a non-empty subset of {BACKENDS}, got {backends}")
    if "es" in backends and es is None:
        raise ValueError("the es backend needs an Elasticsearch client")
    queries = np.asarray(queries, dtype=np.float32)
    cands = np.asarray(cands, dtype=np.float32)
    if len(queries) != len(data.questions) or len(cands) != len(data.candidates):
        raise ValueError("vectors must be aligned with data.questions and data.candidates")
    layout = Layout.build(data)
    full_map, exact_metrics = metrics_for(depth, es_depth if "es" in backends else None)
    result = EvalResult(
        model=model,
        data=data_name,
        candidates=len(data.candidates),
        queries=len(data.questions),
        languages=layout.langs,
        settings={"depth": depth or "pool", "backends": ",".join(backends)},
        notes=[
            "Rank distance needs full ranks over the whole multilingual pool: it is computed "
            "on the exact backend only, over queries with >= 2 relevant candidates.",
            "Exact ranking breaks score ties by candidate position.",
            "R@10 multi = share of a query's relevant candidates (one per language) in its "
            "top 10 of the pool (ranx recall@10), so at most 10/11 on XQuAD-R.",
        ],
    )
    runs: dict[str, BackendRun] = {}
    if "exact" in backends:
        runs["exact"] = exact_backend(
            layout, queries, cands, exact_metrics, depth, progress=progress
        )
        result.backends["exact"] = score(runs["exact"], full_map, layout)
        result.timings["exact"] = runs["exact"].seconds
    if "es" in backends:
        result.settings.update(es_depth=es_depth, num_candidates=num_candidates or "default")
        result.notes.append(
            f"Elasticsearch returns its top {es_depth} per query: AP counts a relevant "
            f"candidate outside them as 0 (mAP = ranx map@{es_depth})."
        )
        name = index or f"xlir-eval-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        index_type = index_vectors(es, name, data, cands, manifest, index_options, progress)
        result.settings["index_options"] = index_type
        result.timings["es_index"] = time.perf_counter() - started
        try:
            es_map = f"map@{es_depth}"
            runs["es"] = es_backend(
                es, name, layout, queries, [es_map, "recall@1", "recall@10"], es_depth,
                num_candidates, progress=progress,
            )  # fmt: skip
        finally:
            if not keep_index:
                from ..index import delete_index

                delete_index(es, name)
        result.backends["es"] = score(runs["es"], es_map, layout)
        result.timings["es_query"] = runs["es"].seconds
        if "exact" in runs:
            result.gap = _gap(runs["exact"], runs["es"], layout, es_map, full_map)
    return result


def index_vectors(
    es,
    name: str,
    data: LareqaData,
    vectors: np.ndarray,
    manifest=None,
    index_options: dict | str | None = None,
    progress: bool = False,
) -> dict:
    """Index the candidates with the vectors already computed, so both backends rank the same.

    Returns the vector field's effective `index_options`.
    """
    from ..index import create_index
    from ..ingest import ingest

    if manifest is None:
        from ..manifest import Manifest

        manifest = Manifest(
            source_model="precomputed-vectors", dim=int(vectors.shape[1]), sha256=""
        )
    meta = create_index(es, name, manifest, index_options)
    docs = (
        {"id": c.id, "lang": c.lang, "text": c.text, "embedding": v.tolist()}
        for c, v in zip(data.candidates, vectors, strict=True)
    )
    report = ingest(es, name, None, docs, progress=progress, create=False)
    if report.failed:
        raise RuntimeError(f"{report.failed} candidates failed to index: {report.failures[:3]}")
    return meta.get("index_options", {})


def encode(encoder, texts: list[str], kind: str, chunk: int = 256, progress: bool = True):
    """Embed with a progress bar (the encoder sorts each chunk by length itself)."""
    method = encoder.encode_queries if kind == "query" else encoder.encode_passages
    parts = []
    with tqdm(
        total=len(texts), desc=f"encoding {kind} texts", unit="text", disable=not progress
    ) as bar:
        for start in range(0, len(texts), chunk):
            parts.append(method(texts[start : start + chunk]))
            bar.update(len(parts[-1]))
    if not parts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.concatenate(parts)


def candidate_texts(data: LareqaData, context: bool) -> list[str]:
    """Sentence only, or (LAReQA) sentence followed by its paragraph; the encoder truncates."""
    return [f"{c.text} {c.context}" if context else c.text for c in data.candidates]


def evaluate(
    model,
    data_dir: str | Path,
    es=None,
    backends: Sequence[str] = BACKENDS,
    langs: Sequence[str] | None = None,
    max_queries: int | None = None,
    context: bool = False,
    depth: int | None = None,
    es_depth: int = 100,
    num_candidates: int | None = None,
    index: str | None = None,
    keep_index: bool = False,
    index_options: dict | str | None = None,
    threads: int | None = None,
    progress: bool = True,
    vectors_cache: str | Path | None = None,
) -> EvalResult:
    """Evaluate `model` (an OnnxEncoder, or an exported model dir) on a LAReQA directory.

    Encodes questions and candidates once; each backend ranks those very vectors.
    depth: mAP depth of the exact backend (None: the whole pool). es_depth: kNN k.
    max_queries: the first N questions of each language (quick runs; all candidates kept).
    vectors_cache: an .npz file; reused when it holds this model's vectors for these very
    texts, else written after encoding (re-scoring without re-encoding).
    """
    if isinstance(model, (str, Path)):
        from ..encoder import OnnxEncoder

        model = OnnxEncoder(model, threads=threads)
    started = time.perf_counter()
    data = load_lareqa(data_dir, list(langs) if langs else None)
    if max_queries:
        data = first_questions(data, max_queries)
    cand_texts = candidate_texts(data, context)
    query_texts = [q.text for q in data.questions]
    keys = {"cands": _vectors_key(model, cand_texts), "queries": _vectors_key(model, query_texts)}
    cached = _load_vectors(vectors_cache, keys)
    cands = cached.get("cands")
    if cands is None:
        cands = encode(model, cand_texts, "passage", progress=progress)
    queries = cached.get("queries")
    if queries is None:
        queries = encode(model, query_texts, "query", progress=progress)
    if vectors_cache and len(cached) < 2:
        Path(vectors_cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(vectors_cache, cands_key=keys["cands"], cands=cands,
                 queries_key=keys["queries"], queries=queries)  # fmt: skip
    encode_seconds = time.perf_counter() - started
    result = evaluate_vectors(
        data, queries, cands, model=model.model_name, manifest=model.manifest, es=es,
        backends=backends, depth=depth, es_depth=es_depth, num_candidates=num_candidates,
        index=index, keep_index=keep_index, index_options=index_options,
        data_name=str(data_dir), progress=progress,
    )  # fmt: skip
    result.settings = {
        "candidates": "sentence+paragraph" if context else "sentence",
        "max_queries": max_queries or "all",
        **result.settings,
    }
    sides = "cached" if len(cached) == 2 else " ".join([*cached, "cached"])
    result.settings["vectors"] = sides if cached else "encoded"
    result.timings = {
        "encode": encode_seconds,
        **result.timings,
        "total": time.perf_counter() - started,
    }
    return result


def _vectors_key(model, texts: list[str]) -> str:
    import hashlib

    digest = hashlib.sha256(f"{model.manifest.sha256}\n{model.model_name}\n".encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def _load_vectors(path: str | Path | None, keys: dict[str, str]) -> dict[str, np.ndarray]:
    """The sides (cands, queries) the cache holds for these very texts: a run over a subset of
    the questions still reuses the candidate vectors."""
    if not path or not Path(path).is_file():
        return {}
    with np.load(path) as saved:
        return {
            side: saved[side]
            for side, key in keys.items()
            if f"{side}_key" in saved.files and str(saved[f"{side}_key"]) == key
        }
