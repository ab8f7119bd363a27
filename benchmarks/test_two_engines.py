"""Group 13: Elasticsearch and OpenSearch side by side, the same vectors, each at XLIR's defaults.

Both engines get the XQuAD-R pool encoded once by XLIR int8 (ingest of precomputed vectors
through `ingest`, each engine's default XLIR index: Elasticsearch `int8_hnsw` m 32 rescored x3,
OpenSearch lucene `hnsw` m 32), then answer the same questions two ways: the client path
(`search`: encode here + one kNN search) and in the engine (`engine_search`: the text goes to
the node, whose xlir plugin embeds it with the same int8 model). Recall@10 is against exact
search over the pool. In-engine ingest: the JSONL of group 5 as raw documents through each
engine's `xlir_embed` pipeline. Both nodes run on the same machine, one at a time busy.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid

import numpy as np
import pytest

from benchmarks.conftest import plugin_model, pool_docs
from benchmarks.quiet import load_avg
from benchmarks.test_ingest import jsonl  # noqa: F401 - the same documents as group 5
from benchmarks.test_search import K, exact_recall
from tests.conftest import opensearch, opensearch_settings  # noqa: F401
from xlir_plugin.engine import engine_ingest, engine_search
from xlir_plugin.index import delete_index
from xlir_plugin.ingest import ingest
from xlir_plugin.search import search, search_vectors

ENGINE_NAMES = ("elasticsearch", "opensearch")
INGEST_GROUP = "13a. ingest of {n} precomputed vectors, Elasticsearch vs OpenSearch"
SEARCH_GROUP = (
    "13b. query text -> top-10 hits (client path), Elasticsearch vs OpenSearch, {n} vectors"
)
ENGINE_SEARCH_GROUP = (
    "13c. query text -> top-10 hits in the engine (the plugin embeds), Elasticsearch vs "
    "OpenSearch, {n} vectors"
)
ENGINE_INGEST_GROUP = (
    "13d. in-engine ingest: {n} XQuAD-R sentences as raw JSONL through `xlir_embed`, "
    "Elasticsearch vs OpenSearch"
)
#: a correctness floor (the wrong vectors indexed), not a quality goal
MIN_RECALL = 0.95


@pytest.fixture(scope="module")
def clients(es, opensearch):  # noqa: F811
    return {"elasticsearch": es, "opensearch": opensearch}


@pytest.fixture(scope="module")
def plugin_models(clients, es_settings, opensearch_settings, int8_encoder):  # noqa: F811
    """The int8 model the pool was encoded with, installed in both engines' xlir plugins."""
    settings = {"elasticsearch": es_settings, "opensearch": opensearch_settings}
    with contextlib.ExitStack() as stack:
        yield {
            engine: stack.enter_context(
                plugin_model(client, settings[engine], int8_encoder.model_dir)
            )
            for engine, client in clients.items()
        }


def _load(client, encoder, pool) -> str:
    """A fresh index holding the pool's vectors (XLIR's default index for the engine)."""
    from benchmarks.conftest import BENCH_INDEX_PREFIX

    name = f"{BENCH_INDEX_PREFIX}engines-{uuid.uuid4().hex[:8]}"
    report = ingest(client, name, encoder, pool_docs(pool), progress=False)
    assert report.failed == 0 and report.indexed == len(pool[0]), report.summary()
    return name


@pytest.fixture(scope="module")
def loaded(clients, int8_encoder, pool):
    names = {engine: _load(client, int8_encoder, pool) for engine, client in clients.items()}
    yield names
    for engine, name in names.items():
        delete_index(clients[engine], name)


def timed_queries(benchmark, run):
    """`run` (one text query) timed 200 times after a warm-up; p50/p99 go into the row."""
    for _ in range(5):
        run()
    hits = benchmark.pedantic(run, rounds=200, warmup_rounds=5)
    if benchmark.stats:
        data = np.asarray(benchmark.stats.stats.data) * 1000
        for q in (50, 99):
            benchmark.extra_info[f"p{q}_ms"] = round(float(np.percentile(data, q)), 2)
    return hits


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_two_engines_ingest(benchmark, clients, int8_encoder, pool, engine):
    benchmark.group = INGEST_GROUP.format(n=len(pool[0]))
    created: list[str] = []
    benchmark.pedantic(
        lambda: created.append(_load(clients[engine], int8_encoder, pool)), rounds=2, iterations=1
    )
    for name in created:
        delete_index(clients[engine], name)
    benchmark.extra_info.update({"engine": engine, "docs": len(pool[0])})
    if benchmark.stats:
        benchmark.extra_info["docs_per_s"] = round(len(pool[0]) / benchmark.stats.stats.median, 1)


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_two_engines_search(benchmark, clients, loaded, int8_encoder, pool, questions, engine):
    sentences, vectors = pool
    benchmark.group = SEARCH_GROUP.format(n=len(vectors))
    client, index = clients[engine], loaded[engine]
    row = {s.id: i for i, s in enumerate(sentences)}
    query_vectors = int8_encoder.encode_queries(questions)
    results = search_vectors(client, index, query_vectors, k=K, source=("id",))
    recall = exact_recall(vectors, query_vectors, [[row[h.id] for h in hits] for hits in results])
    cycle = itertools.cycle(questions)
    hits = timed_queries(benchmark, lambda: search(client, index, int8_encoder, next(cycle), k=K))
    benchmark.extra_info.update(
        {"engine": engine, "recall@10": round(recall, 4), "queries": len(questions)}
    )
    assert len(hits) == K and all(h.text for h in hits)
    assert recall >= MIN_RECALL, f"{engine}: recall@10 {recall:.3f}"


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_two_engines_search_in_engine(
    benchmark, clients, loaded, plugin_models, int8_encoder, questions, pool, engine
):
    """The node embeds the query text; its hits must be the client path's (the same model)."""
    benchmark.group = ENGINE_SEARCH_GROUP.format(n=len(pool[0]))
    client, index, model = clients[engine], loaded[engine], plugin_models[engine]
    same = [
        [h.id for h in engine_search(client, index, model, q, k=K)]
        == [h.id for h in search(client, index, int8_encoder, q, k=K)]
        for q in questions[:20]
    ]
    cycle = itertools.cycle(questions)
    hits = timed_queries(benchmark, lambda: engine_search(client, index, model, next(cycle), k=K))
    benchmark.extra_info.update(
        {"engine": engine, "same_top10": f"{sum(same)}/{len(same)}", "load": load_avg()[0]}
    )
    assert len(hits) == K
    assert sum(same) >= len(same) - 1  # int8 ties may swap one rank


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_two_engines_ingest_in_engine(benchmark, clients, plugin_models, jsonl, engine):  # noqa: F811
    """Raw documents into a fresh index each round; the node's plugin embeds every one."""
    path, n = jsonl
    benchmark.group = ENGINE_INGEST_GROUP.format(n=n)
    client, made = clients[engine], []

    def run():
        from benchmarks.conftest import BENCH_INDEX_PREFIX

        made.append(f"{BENCH_INDEX_PREFIX}engines-raw-{uuid.uuid4().hex[:8]}")
        return engine_ingest(client, made[-1], plugin_models[engine], path, progress=False)

    try:
        report = benchmark.pedantic(run, rounds=2, iterations=1)
        assert (report.indexed, report.failed) == (n, 0), report.summary()
    finally:
        for name in made:
            delete_index(client, name)
    benchmark.extra_info.update({"engine": engine, "docs": n, "load": load_avg()[0]})
    if benchmark.stats:
        benchmark.extra_info["docs_per_s"] = round(n / benchmark.stats.stats.median, 1)
