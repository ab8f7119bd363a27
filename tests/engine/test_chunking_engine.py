"""`xlir_embed` with `chunking`, on both engines: the node cuts the passages the Python chunker
cuts (`tests/data/chunking_golden.json`, the default model's real tokenizer) and writes each
the vector the Python encoder gives it; bad long documents fail alone.

Documents go through `_ingest/pipeline/_simulate` (the pipeline inline, nothing indexed), so the
processor's output is read as it leaves the processor."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.engine.conftest import cosines, wait_until_served
from tests.engine.test_es_plugin_engine import e5_export
from xlir_plugin.chunking import Chunker, ChunkSettings
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.engine import EngineError, engine_model
from xlir_plugin.engine_install import install_model, remove_model
from xlir_plugin.engines import engine_of

GOLDEN = json.loads((Path(__file__).parents[1] / "data" / "chunking_golden.json").read_text())
ENGINES = ["elasticsearch", "opensearch"]


@pytest.fixture(scope="module")
def export() -> Path:
    return e5_export()


@pytest.fixture(scope="module")
def encoder(export) -> OnnxEncoder:
    return OnnxEncoder(export, threads=2)


@pytest.fixture(scope="module", params=ENGINES)
def node(request, export):
    """(client, model name) on each engine's session node, the default int8 model installed."""
    client = request.getfixturevalue("es" if request.param == "elasticsearch" else "opensearch")
    settings = request.getfixturevalue(
        "es_settings" if request.param == "elasticsearch" else "opensearch_settings"
    )
    name = f"xlir-test-chunk-{uuid.uuid4().hex[:8]}"
    install_model(export, name, settings, future_nodes=False)
    wait_until_served(lambda: engine_model(client, name), name, EngineError)
    yield client, name
    remove_model(name, settings, future_nodes=False)


def simulate(client, model: str, chunking: dict, docs: list[dict]) -> list[dict]:
    """Each document as the processor leaves it (`{"doc": ...}`) or its error (`{"error": ...}`)."""
    processor = {"model": model, "field_map": {"text": "passages"}, "chunking": chunking}
    body = {
        "pipeline": {"processors": [{"xlir_embed": processor}]},
        "docs": [{"_index": "docs", "_id": str(i), "_source": d} for i, d in enumerate(docs)],
    }
    resp = engine_of(client).request(client, "POST", "/_ingest/pipeline/_simulate", body, None)
    return resp["docs"]


def spans(result: dict) -> list[list[int]]:
    return [[p["start"], p["end"]] for p in result["doc"]["_source"]["passages"]]


@pytest.mark.slow
def test_chunking_engine_cuts_the_golden_passages_with_the_python_vectors(node, encoder):
    client, model = node
    texts = GOLDEN["texts"]
    settings = sorted({(c["max_tokens"], c["overlap_tokens"]) for c in GOLDEN["cases"]})
    compared = 0
    for max_tokens, overlap in settings:
        cases = [
            c
            for c in GOLDEN["cases"]
            if (c["max_tokens"], c["overlap_tokens"]) == (max_tokens, overlap)
        ]
        chunking = {"max_tokens": max_tokens, "overlap_tokens": overlap}
        results = simulate(client, model, chunking, [{"text": texts[c["name"]]} for c in cases])
        for case, result in zip(cases, results, strict=True):
            assert "error" not in result, (case["name"], result)
            assert spans(result) == case["passages"], (case["name"], max_tokens, overlap)
            compared += 1
        if (max_tokens, overlap) == settings[0]:  # the vectors, once per text
            for case, result in zip(cases, results, strict=True):
                text = texts[case["name"]]
                passages = result["doc"]["_source"]["passages"]
                got = np.asarray([p["embedding"] for p in passages], dtype=np.float32)
                want = encoder.encode_passages([text[p["start"] : p["end"]] for p in passages])
                assert cosines(got, want).min() >= 0.9999, case["name"]
    assert compared == len(GOLDEN["cases"])


@pytest.mark.slow
def test_chunking_engine_long_and_bad_documents_fail_alone(node, encoder, export):
    """A 100k-character line without a boundary is cut like the Python chunker cuts it; empty,
    whitespace-only and non-string texts are per-document errors; markup is text."""
    client, model = node
    line = "=" * 100_000  # 6,251 tokens: 25 passages of 256
    docs = [{"text": line}, {"text": ""}, {"text": " \n\t "}, {"text": 7}, {"text": "<p></p>"}]
    results = simulate(client, model, {"max_tokens": 256, "overlap_tokens": 0}, docs)
    chunker = Chunker(export / "tokenizer.json", ChunkSettings(256))
    assert spans(results[0]) == [list(s) for s in chunker.spans(line)]
    assert len(spans(results[0])) == 25
    for bad in results[1:4]:
        assert "error" in bad and "xlir_embed" in json.dumps(bad["error"]), bad
    assert spans(results[4]) == [[0, 7]]


@pytest.mark.slow
def test_chunking_engine_index_and_search_match_the_client_path(node, encoder, tmp_path):
    """`xlir index --chunk-tokens` in the client and `--in-engine`: the same passages with the
    same vectors in the nested field; a text query finds the same documents with the same best
    passages either way (the node embeds the query in the engine path)."""
    from xlir_plugin.engine import engine_ingest, engine_search
    from xlir_plugin.index import delete_index
    from xlir_plugin.ingest import ingest
    from xlir_plugin.search import search

    client, name = node
    model = engine_model(client, name)
    chunking = ChunkSettings(64, 8)
    texts = GOLDEN["texts"]
    docs = [{"id": key, "lang": "xx", "text": text} for key, text in texts.items()]
    pair = [f"xlir-test-chunks-{kind}-{uuid.uuid4().hex[:6]}" for kind in ("client", "engine")]
    try:
        report = ingest(client, pair[0], encoder, docs, progress=False, chunking=chunking)
        assert report.failed == 0
        report = engine_ingest(client, pair[1], model, docs, progress=False, chunking=chunking)
        assert (report.indexed, report.failed) == (len(docs), 0)
        for key in texts:
            got = [stored(client, index, key) for index in pair]
            assert [[p["start"], p["end"]] for p in got[0]] == [
                [p["start"], p["end"]] for p in got[1]
            ], key
            if engine_of(client).name == "elasticsearch":
                # OpenSearch 3.5's k-NN derives `_source` vectors from the index and gives a
                # nested one back as `1`: the _simulate test above compares its vectors instead
                vectors = [np.asarray([p["embedding"] for p in g], np.float32) for g in got]
                assert cosines(*vectors).min() >= 0.9999, key
        for query in (
            "Why did the old town move?",
            "北京是中国的首都",
            "Musikfestspiele im Sommer",
        ):
            want = search(client, pair[0], encoder, query, k=5)
            got = engine_search(client, pair[1], model, query, k=5)
            assert [h.id for h in got] == [h.id for h in want], query
            assert got[0].passages and [(p["start"], p["end"]) for p in got[0].passages] == [
                (p["start"], p["end"]) for p in want[0].passages
            ]
            best = got[0].passages[0]
            assert best["text"] == texts[got[0].id][best["start"] : best["end"]]
    finally:
        for index in pair:
            delete_index(client, index)


def stored(client, index: str, doc_id: str) -> list[dict]:
    """A document's stored passages, by its `id` field."""
    body = {"query": {"term": {"id": doc_id}}, "_source": ["passages"]}
    (hit,) = engine_of(client).search(client, index, body)["hits"]["hits"]
    return hit["_source"]["passages"]
