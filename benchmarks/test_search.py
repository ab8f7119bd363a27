"""Groups 3-4: kNN latency per index type (with recall@10 vs exact) and end-to-end latency.

Every index type holds the same vectors (the XQuAD-R pool encoded once by XLIR int8), bulk
indexed through `ingest` with precomputed embeddings and force-merged to one segment, so the
index types differ only in how Elasticsearch stores and searches them.
"""

from __future__ import annotations

import itertools
import statistics
import uuid

import numpy as np
import pytest
from elasticsearch import ApiError

from benchmarks.conftest import pool_docs
from benchmarks.engines import ENGINES
from xlir_plugin.errors import XlirError
from xlir_plugin.index import delete_index
from xlir_plugin.ingest import ingest
from xlir_plugin.schema import build_mappings
from xlir_plugin.search import knn_body, search, search_vector, search_vectors

INDEX_TYPES = ("hnsw", "int8_hnsw", "bbq_hnsw", "flat")
K = 10
KNN_GROUP = "3. Elasticsearch kNN latency, k=10, XQuAD-R pool of {n} vectors"
E2E_GROUP = "4. end to end: query text -> top-10 hits (encode + kNN on {kind}), 2 threads"
#: recall@10 floors: correctness checks (e.g. the wrong vectors indexed), not quality goals
MIN_RECALL = {"flat": 0.99, "hnsw": 0.9, "int8_hnsw": 0.85, "bbq_hnsw": 0.7}


@pytest.fixture(scope="module")
def query_vectors(int8_encoder, questions) -> np.ndarray:
    return int8_encoder.encode_queries(questions)


@pytest.fixture(scope="module")
def indexes(es, int8_encoder, pool):  # noqa: F811
    """One index per supported index type, all holding the same precomputed vectors."""
    from benchmarks.conftest import BENCH_INDEX_PREFIX, RUN_INFO

    sentences, vectors = pool
    nodes = es.nodes.info()["nodes"].values()
    RUN_INFO["elasticsearch"] = ", ".join(sorted({n["version"] for n in nodes}))
    names: dict[str, str] = {}
    unsupported: dict[str, str] = {}
    run = uuid.uuid4().hex[:6]
    for kind in INDEX_TYPES:
        name = f"{BENCH_INDEX_PREFIX}{kind.replace('_', '-')}-{run}"
        docs = pool_docs(pool)
        try:
            report = ingest(es, name, int8_encoder, docs, progress=False, index_options=kind)
        except (XlirError, ApiError) as exc:  # e.g. bbq_hnsw on a server without it
            unsupported[kind] = str(exc)
            delete_index(es, name)
            continue
        assert report.failed == 0 and report.indexed == len(sentences), report.summary()
        es.indices.forcemerge(index=name, max_num_segments=1)
        es.indices.refresh(index=name)
        names[kind] = name
    RUN_INFO["unsupported_index_types"] = unsupported
    yield names
    for name in names.values():
        delete_index(es, name)


def exact_recall(pool: np.ndarray, queries: np.ndarray, found: list[list[int]]) -> float:
    """Mean recall@10 of `found` (pool rows per query) against exact search in numpy.

    Ties count: a hit scoring at least the exact 10th-best similarity is correct (the pool
    holds duplicate sentences, whose order among equals is arbitrary).
    """
    sims = queries @ pool.T
    tenth = -np.partition(-sims, K - 1, axis=1)[:, K - 1]
    recalls = [
        min(K, int(np.sum(sims[i, rows] >= tenth[i] - 1e-5))) / K for i, rows in enumerate(found)
    ]
    return float(np.mean(recalls))


@pytest.mark.parametrize("kind", INDEX_TYPES)
def test_knn_latency(benchmark, es, indexes, pool, query_vectors, kind):  # noqa: F811
    sentences, vectors = pool
    benchmark.group = KNN_GROUP.format(n=len(vectors))
    if kind not in indexes:
        pytest.skip(f"{kind} not supported by this Elasticsearch")
    index = indexes[kind]
    row = {s.id: i for i, s in enumerate(sentences)}
    results = search_vectors(es, index, query_vectors, k=K, source=("id",))
    assert all(len(hits) == K for hits in results)
    recall = exact_recall(vectors, query_vectors, [[row[h.id] for h in hits] for hits in results])
    took = [  # server-side milliseconds, to tell Elasticsearch time from client time
        es.search(index=index, body=knn_body(q.tolist(), K, index_type=kind))["took"]
        for q in query_vectors[:50]
    ]
    benchmark.extra_info.update(
        {
            "index_type": kind,
            "recall@10": round(recall, 4),
            "queries": len(query_vectors),
            "vectors": len(vectors),
            "server_took_ms_median": statistics.median(took),
        }
    )
    cycle = itertools.cycle(query_vectors)
    hits = benchmark.pedantic(
        lambda: search_vector(es, index, next(cycle), k=K), rounds=300, warmup_rounds=20
    )
    assert len(hits) == K
    assert recall >= MIN_RECALL[kind], f"{kind}: recall@10 {recall:.3f}"


@pytest.fixture(scope="module")
def default_kind(es, int8_encoder, indexes):  # noqa: F811
    """The index type Elasticsearch picks when none is given (what `xlir index` gets)."""
    name = f"xlir-bench-default-{uuid.uuid4().hex[:6]}"
    es.indices.create(index=name, mappings=build_mappings(int8_encoder.manifest))
    try:
        mapping = es.indices.get_mapping(index=name)[name]["mappings"]
        kind = mapping["properties"]["embedding"].get("index_options", {}).get("type", "hnsw")
    finally:
        es.indices.delete(index=name)
    return kind if kind in indexes else "hnsw"


@pytest.mark.parametrize("engine", ENGINES)
def test_end_to_end_latency(benchmark, es, engines, indexes, default_kind, questions, engine):  # noqa: F811
    benchmark.group = E2E_GROUP.format(kind=default_kind)
    index = indexes[default_kind]
    cycle = itertools.cycle(questions)
    if engine == "xlir-int8":  # the product API: checks the index stamp, encodes, searches
        encoder = engines("xlir-int8", 2).encoder

        def run():
            return search(es, index, encoder, next(cycle), k=K)
    else:  # the same search with a query vector from another engine (same model)
        other = engines(engine, 2)

        def run():
            return search_vector(es, index, other.encode([next(cycle)], True)[0], k=K)

    for _ in range(5):
        run()
    hits = benchmark.pedantic(run, rounds=200, warmup_rounds=5)
    benchmark.extra_info.update({"engine": engine, "index_type": default_kind, "threads": 2})
    if benchmark.stats:
        data = np.asarray(benchmark.stats.stats.data) * 1000
        for q in (50, 95, 99):
            benchmark.extra_info[f"p{q}_ms"] = round(float(np.percentile(data, q)), 2)
    assert len(hits) == K and all(h.text for h in hits)
