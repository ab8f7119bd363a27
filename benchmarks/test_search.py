"""Groups 3-4: kNN latency per index type (with recall@10 vs exact) and end-to-end latency."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.ingest import ingest
from xlir_plugin.search import search, search_vector

INDEX_TYPES = ["hnsw", "int8_hnsw", "bbq_hnsw", "flat"]


@pytest.fixture(scope="module")
def encoder(model_dirs):
    return OnnxEncoder(model_dirs["int8"], threads=2)


@pytest.fixture(scope="module")
def query_vectors(encoder, questions):
    return encoder.encode_queries(questions)


@pytest.fixture(scope="module")
def indexes(es, encoder, pool_vectors):  # noqa: F811
    """One index per index type, holding the same precomputed vectors."""
    candidates, vectors = pool_vectors
    names = {}
    for kind in INDEX_TYPES:
        name = f"xlir-bench-{kind.replace('_', '-')}"
        es.options(ignore_status=404).indices.delete(index=name)
        docs = ({"id": c.id, "lang": c.lang, "text": c.text, "embedding": v.tolist()}
                for c, v in zip(candidates, vectors, strict=True))  # fmt: skip
        report = ingest(es, name, encoder, docs, progress=False, index_options={"type": kind})
        assert report.failed == 0
        es.indices.forcemerge(index=name, max_num_segments=1)
        names[kind] = name
    yield names
    for name in names.values():
        es.indices.delete(index=name)


def exact_top10(pool: np.ndarray, queries: np.ndarray, ids: list[str]) -> list[set[str]]:
    top = np.argsort(-(queries @ pool.T), axis=1)[:, :10]
    return [{ids[i] for i in row} for row in top]


@pytest.mark.parametrize("kind", INDEX_TYPES)
def test_knn_latency(benchmark, es, indexes, pool_vectors, query_vectors, kind):  # noqa: F811
    benchmark.group = "3. Elasticsearch kNN latency, k=10, XQuAD-R pool"
    candidates, vectors = pool_vectors
    truth = exact_top10(vectors, query_vectors, [c.id for c in candidates])
    found = [{h.id for h in search_vector(es, indexes[kind], q, k=10)} for q in query_vectors]
    recall = float(np.mean([len(t & f) / 10 for t, f in zip(truth, found, strict=True)]))
    benchmark.extra_info.update({"recall@10": round(recall, 4), "vectors": len(vectors)})
    cycle = itertools.cycle(query_vectors)
    hits = benchmark.pedantic(
        lambda: search_vector(es, indexes[kind], next(cycle), k=10), rounds=200, warmup_rounds=10
    )
    assert len(hits) == 10
    assert recall >= (0.99 if kind == "flat" else 0.8)


def test_end_to_end_query_latency(benchmark, es, indexes, encoder, questions):  # noqa: F811
    benchmark.group = "4. end to end: query text -> top-10 hits (encode + kNN), default index"
    cycle = itertools.cycle(questions)
    index = indexes["bbq_hnsw"]  # what Elasticsearch 9 picks by default for 384 dims
    hits = benchmark.pedantic(
        lambda: search(es, index, encoder, next(cycle), k=10), rounds=200, warmup_rounds=10
    )
    data = sorted(benchmark.stats.stats.data) if benchmark.stats else []
    if data:
        benchmark.extra_info.update(
            {f"p{q}_ms": round(float(np.percentile(data, q)) * 1000, 2) for q in (50, 95, 99)}
        )
    assert len(hits) == 10
