"""Groups 9-10: the in-engine path (plugins/elasticsearch/) against the client path, same model, same node.

9. ingest: the same XQuAD-R sentences as JSONL -> searchable; the client path encodes in
   Python (`ingest`, 2 onnxruntime threads), the in-engine path sends raw documents through
   the index's `xlir_embed` default pipeline (`engine_ingest`).
10. query text -> top-10 hits: the client encodes the query and sends the vector (`search`);
    in the engine, the text goes in a `query_vector_builder` (`engine_search`).

Both run on this machine's cores, so the in-engine path can only win what Python overheads
and round trips cost. `XLIR_BENCH_ENGINE_MODEL=DIR` benchmarks another exported model (default:
the default int8 model).
"""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from benchmarks.conftest import plugin_model as installed_model
from benchmarks.quiet import load_avg
from benchmarks.test_ingest import jsonl  # noqa: F401 - the same documents as group 5
from xlir_plugin.index import delete_index
from xlir_plugin.ingest import ingest

INGEST_GROUP = "9. in-engine vs client ingest: {n} XQuAD-R sentences, JSONL -> searchable"
QUERY_GROUP = "10. in-engine vs client: query text -> top-10 hits, {n} XQuAD-R passages"
K = 10


@pytest.fixture(scope="module")
def engine_export(request) -> Path:
    env = os.environ.get("XLIR_BENCH_ENGINE_MODEL")
    if env:
        return Path(env)
    return request.getfixturevalue("model_dirs")["int8"]


@pytest.fixture(scope="module")
def client_encoder(engine_export):
    from xlir_plugin.encoder import OnnxEncoder

    return OnnxEncoder(engine_export, threads=2)


@pytest.fixture(scope="module")
def plugin_model(es, es_settings, engine_export):  # noqa: F811
    """The model installed on the benchmark node (its running node only)."""
    with installed_model(es, es_settings, engine_export) as model:
        yield model


@pytest.mark.parametrize("path_kind", ["client", "in-engine"])
def test_engine_ingest_throughput(
    benchmark,
    es,  # noqa: F811
    client_encoder,
    plugin_model,
    jsonl,  # noqa: F811
    path_kind,
):
    """The JSONL of group 5 (`test_ingest.py`), into a fresh index each round."""
    from xlir_plugin.engine import engine_ingest

    path, n = jsonl
    benchmark.group = INGEST_GROUP.format(n=n)
    made: list[str] = []

    def drop_made():
        while made:
            delete_index(es, made.pop())

    def run():
        made.append(f"xlir-bench-engine-{uuid.uuid4().hex[:8]}")
        if path_kind == "client":
            return ingest(es, made[-1], client_encoder, path, progress=False)
        return engine_ingest(es, made[-1], plugin_model, path, progress=False)

    try:
        report = benchmark.pedantic(run, setup=drop_made, rounds=2, iterations=1)
        assert report.failed == 0 and report.indexed == n, report.summary()
        assert es.count(index=made[-1], query={"exists": {"field": "embedding"}})["count"] == n
    finally:
        drop_made()
    label = f"xlir-int8 {path_kind}"
    benchmark.extra_info.update({"engine": label, "docs": n, "load": load_avg()[0]})
    if benchmark.stats:
        benchmark.extra_info["docs_per_s"] = round(n / benchmark.stats.stats.median, 1)


@pytest.fixture(scope="module")
def engine_pool_index(es, xquad, quick, client_encoder):  # noqa: F811
    """2,000 XQuAD-R sentences (200 in quick mode) indexed with client-side vectors."""
    step = 20 * 3 if quick else 6
    sentences = xquad.sentences[::step]
    name = f"xlir-bench-engine-pool-{uuid.uuid4().hex[:6]}"
    docs = [{"id": s.id, "lang": s.lang, "text": s.text} for s in sentences]
    report = ingest(es, name, client_encoder, docs, progress=False)
    assert report.failed == 0
    es.indices.forcemerge(index=name, max_num_segments=1)
    es.indices.refresh(index=name)
    yield name, len(sentences)
    delete_index(es, name)


@pytest.mark.parametrize("path_kind", ["client", "in-engine"])
def test_engine_query_latency(
    benchmark, es, client_encoder, plugin_model, engine_pool_index, questions, path_kind
):  # noqa: F811
    from xlir_plugin.engine import engine_search
    from xlir_plugin.search import search

    index, n = engine_pool_index
    benchmark.group = QUERY_GROUP.format(n=n)
    cycle = itertools.cycle(questions)
    if path_kind == "client":

        def run():
            return search(es, index, client_encoder, next(cycle), k=K)
    else:

        def run():
            return engine_search(es, index, plugin_model, next(cycle), k=K)

    same = [
        [h.id for h in search(es, index, client_encoder, q, k=K)]
        == [h.id for h in engine_search(es, index, plugin_model, q, k=K)]
        for q in questions[:20]
    ]
    for _ in range(5):
        run()
    hits = benchmark.pedantic(run, rounds=200, warmup_rounds=5)
    label = f"xlir-int8 {path_kind}"
    benchmark.extra_info.update(
        {"engine": label, "same_top10": f"{sum(same)}/{len(same)}", "load": load_avg()[0]}
    )
    if benchmark.stats:
        data = np.asarray(benchmark.stats.stats.data) * 1000
        for q in (50, 95, 99):
            benchmark.extra_info[f"p{q}_ms"] = round(float(np.percentile(data, q)), 2)
    assert len(hits) == K
    assert sum(same) >= len(same) - 1  # int8 ties may swap one rank
