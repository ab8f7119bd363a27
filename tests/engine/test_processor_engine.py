"""The `xlir_embed` ingest processor and the `xlir` query vector builder on the session's node,
driven directly and through `xlir_plugin.engine` (what `xlir index|search --in-engine` run)."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from tests.engine.conftest import (
    DIM,
    MULTILINGUAL,
    build_other_model,
    bulk_with,
    cosines,
    long_text,
    put_pipeline,
    sources,
)
from xlir_plugin.engine import (
    TRUNCATED_FIELD,
    EngineError,
    engine_ingest,
    engine_search,
    pipeline_id,
)
from xlir_plugin.engine import engine_model as engine_model_of
from xlir_plugin.errors import ModelMismatch
from xlir_plugin.index import create_index, delete_index
from xlir_plugin.ingest import ingest
from xlir_plugin.manifest import Manifest
from xlir_plugin.search import search

pytestmark = [pytest.mark.es]


def test_processor_embeds_like_the_python_encoder(
    es, engine_model, engine_index, encoder, sentences
):
    docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences[::20]]
    docs.append({"id": "long", "lang": "en", "text": long_text(MULTILINGUAL)})
    docs += [{"id": f"m{i}", "lang": "xx", "text": t} for i, t in enumerate(MULTILINGUAL)]
    pipeline = put_pipeline(es, engine_model, input_type="passage")
    items = bulk_with(es, engine_index, pipeline, docs)
    assert [i for i in items if "error" in i] == []
    by_id = sources(es, engine_index)
    got = np.asarray([by_id[d["id"]]["embedding"] for d in docs], dtype=np.float32)
    expected = encoder.encode_passages([d["text"] for d in docs], warn=False)
    assert cosines(got, expected).min() >= 0.9999
    assert by_id["long"]["embedding_truncated"] is True
    assert "embedding_truncated" not in by_id[docs[0]["id"]]


@pytest.mark.parametrize(
    "doc, reason",
    [
        ({"title": "no text field"}, "field [text] is missing"),
        ({"text": 42}, "field [text] is of type [Integer], not a string"),
        ({"text": ["a", "b"]}, "not a string"),
        ({"text": "   "}, "field [text] is empty"),
    ],
)
def test_processor_rejects_bad_documents(es, engine_model, engine_index, doc, reason):
    pipeline = put_pipeline(es, engine_model)
    (item,) = bulk_with(es, engine_index, pipeline, [doc])
    assert reason in item["error"]["reason"], item
    assert engine_model in item["error"]["reason"], item
    assert es.cluster.health()["status"] != "red"


def test_processor_ignore_missing_and_on_failure(es, engine_model, engine_index):
    pipeline = put_pipeline(es, engine_model, ignore_missing=True)
    (item,) = bulk_with(es, engine_index, pipeline, [{"id": "skip", "title": "no text"}])
    assert "error" not in item
    assert "embedding" not in sources(es, engine_index)["skip"]
    # on_failure: a document whose text is not a string is embedded from its title instead
    fallback = f"xlir-test-{uuid.uuid4().hex[:8]}"
    title = {"xlir_embed": {"model": engine_model, "field_map": {"title": "embedding"}}}
    processor = {"model": engine_model, "field_map": {"text": "embedding"}, "on_failure": [title]}
    es.ingest.put_pipeline(id=fallback, processors=[{"xlir_embed": processor}])
    (item,) = bulk_with(es, engine_index, fallback, [{"id": "fb", "text": 7, "title": "Berlin"}])
    assert "error" not in item, item
    assert len(sources(es, engine_index)["fb"]["embedding"]) == DIM


def test_processor_unknown_model_is_a_per_document_error(es, engine_index):
    pipeline = put_pipeline(es, "no-such-model")
    items = bulk_with(es, engine_index, pipeline, [{"text": "a"}, {"text": "b"}])
    for item in items:
        assert "xlir model [no-such-model] is not installed" in item["error"]["reason"], item
    assert es.cluster.health()["status"] != "red"


def test_processor_refuses_an_index_of_another_model(es, engine_model, engine_index, tmp_path):
    other = build_other_model(tmp_path / "other", 5, "synthetic/other")
    other_index = f"{engine_index}-stamp"
    create_index(es, other_index, Manifest.load(other))
    try:
        pipeline = put_pipeline(es, engine_model)
        (item,) = bulk_with(es, other_index, pipeline, [{"text": "Berlin"}])
        reason = item["error"]["reason"]
        assert "synthetic/other@none" in reason and "synthetic/unigram@none" in reason, reason
    finally:
        es.options(ignore_status=404).indices.delete(index=other_index)


def test_processor_eight_concurrent_bulks_lose_nothing(es, engine_model, engine_index, sentences):
    pipeline = put_pipeline(es, engine_model)
    texts = [s["text"] for s in sentences]
    per_bulk, bulks = 250, 8
    errors: list = []

    def send(b: int) -> None:
        try:
            ops = []
            for i in range(per_bulk):
                ops.append({"index": {"_index": engine_index, "_id": f"{b}-{i}"}})
                ops.append({"text": texts[(b * per_bulk + i) % len(texts)], "lang": "xx"})
            resp = es.bulk(operations=ops, pipeline=pipeline)
            errors.extend(i["index"]["error"] for i in resp["items"] if "error" in i["index"])
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(b,)) for b in range(bulks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    es.indices.refresh(index=engine_index)
    assert es.count(index=engine_index)["count"] == per_bulk * bulks
    with_vectors = es.count(index=engine_index, query={"exists": {"field": "embedding"}})["count"]
    assert with_vectors == per_bulk * bulks


# -- query vector builder -----------------------------------------------------------------------

QUESTION = "Wer hat die Relativitätstheorie entwickelt?"


@pytest.fixture
def searchable_index(es, engine_model, engine_index, sentences) -> str:
    docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences[::3]]
    pipeline = put_pipeline(es, engine_model)
    items = bulk_with(es, engine_index, pipeline, docs)
    assert [i for i in items if "error" in i] == []
    return engine_index


def _ids(resp) -> list[str]:
    return [h["_id"] for h in resp["hits"]["hits"]]


def test_engine_knn_section_with_query_vector_builder(es, engine_model, searchable_index, encoder):
    vector = encoder.encode_queries([QUESTION])[0].tolist()
    knn = {"field": "embedding", "k": 10, "num_candidates": 100, "filter": {"term": {"lang": "de"}}}
    builder = {"xlir": {"model": engine_model, "text": QUESTION}}
    by_text = es.search(
        index=searchable_index, knn=knn | {"query_vector_builder": builder}, source=["lang"]
    )
    by_vector = es.search(
        index=searchable_index, knn=knn | {"query_vector": vector}, source=["lang"]
    )
    assert _ids(by_text) == _ids(by_vector) and len(_ids(by_text)) == 10
    assert {h["_source"]["lang"] for h in by_text["hits"]["hits"]} == {"de"}


def test_engine_knn_query_with_query_vector_builder(es, engine_model, searchable_index, encoder):
    vector = encoder.encode_queries([QUESTION])[0].tolist()
    knn = {"field": "embedding", "k": 10, "num_candidates": 100}
    knn["filter"] = {"terms": {"lang": ["en", "es"]}}
    builder = {"xlir": {"model": engine_model, "text": QUESTION}}
    by_text = es.search(
        index=searchable_index,
        query={"knn": knn | {"query_vector_builder": builder}},
        size=10,
        source=["lang"],
    )
    by_vector = es.search(
        index=searchable_index, query={"knn": knn | {"query_vector": vector}}, size=10
    )
    assert _ids(by_text) == _ids(by_vector) and len(_ids(by_text)) == 10
    assert {h["_source"]["lang"] for h in by_text["hits"]["hits"]} <= {"en", "es"}


def test_engine_query_vector_builder_unknown_model_is_an_error(es, searchable_index):
    from elasticsearch import ApiError

    builder = {"xlir": {"model": "no-such-model", "text": "x"}}
    with pytest.raises(ApiError) as info:
        es.search(
            index=searchable_index,
            knn={
                "field": "embedding",
                "k": 1,
                "num_candidates": 10,
                "query_vector_builder": builder,
            },
        )
    assert "[no-such-model] is not installed" in str(info.value.body), info.value.body


# -- the Python side: engine_ingest / engine_search (xlir index|search --in-engine) --------------


@pytest.mark.slow
def test_engine_path_gives_the_client_paths_top_10_on_xquad_r(
    es, engine_model, encoder, sentences, xquad_dir
):
    """Raw documents through the pipeline, text-only queries: the same top 10 as the client
    path (Python encodes both) on a 9-language XQuAD-R subset, in every search mode. Exact kNN
    (`flat`) on both sides, so that two HNSW graphs cannot differ; hits whose scores tie (to
    1e-4: duplicate sentences) may come in either order."""
    from xlir_plugin.evaluation.data import load_lareqa

    data = load_lareqa(xquad_dir)
    docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences]
    model = engine_model_of(es, engine_model)
    engine_index, client_index = (f"xlir-test-{kind}-{uuid.uuid4().hex[:8]}" for kind in "ec")
    try:
        report = engine_ingest(es, engine_index, model, docs, progress=False, index_options="flat")
        assert (report.indexed, report.failed) == (len(docs), 0)
        ingest(es, client_index, encoder, docs, progress=False, index_options="flat")
        settings = es.indices.get_settings(index=engine_index)[engine_index]["settings"]
        assert settings["index"]["default_pipeline"] == pipeline_id(engine_model)
        qids = sorted(data.questions_by_id)[:: max(1, len(data.questions_by_id) // 40)]
        compared = 0
        for qid in qids:
            for lang, question in list(data.questions_by_id[qid].items())[:3]:
                for mode, kw in (
                    ("multilingual", {}),
                    ("cross", {"lang": lang, "targets": ["en", "zh", "th"]}),
                    ("mono", {"lang": lang}),
                ):
                    if mode == "mono" and lang not in {s["lang"] for s in sentences}:
                        continue
                    got = engine_search(es, engine_index, model, question.text, mode, **kw)
                    want = search(es, client_index, encoder, question.text, mode, **kw)
                    assert_same_ranking(got, want, (qid, lang, mode))
                    compared += 1
        assert compared >= 200
    finally:
        delete_index(es, engine_index)
        delete_index(es, client_index)


def assert_same_ranking(got, want, where) -> None:
    """Same ids in the same order, but for hits whose scores tie: at a rank where the ids
    differ, both scores are equal (to 1e-4), so both paths score both documents alike."""
    got_ids, want_ids = [h.id for h in got], [h.id for h in want]
    assert len(got) == len(want) == 10, where
    scores = [h.score for h in got], [h.score for h in want]
    assert np.allclose(*scores, atol=1e-4), (where, got_ids, want_ids, scores)
    assert sum(a != b for a, b in zip(got_ids, want_ids, strict=True)) <= 4, (where, scores)


def test_engine_search_refuses_an_index_of_another_model(es, engine_model, tmp_path):
    other = build_other_model(tmp_path / "other", 7, "synthetic/other")
    index = f"xlir-test-{uuid.uuid4().hex[:8]}"
    create_index(es, index, Manifest.load(other))
    try:
        with pytest.raises(ModelMismatch) as info:
            engine_search(es, index, engine_model_of(es, engine_model), "Berlin")
        assert "synthetic/other@none" in str(info.value)
        assert "synthetic/unigram@none" in str(info.value)
        with pytest.raises(EngineError, match="no model 'nope' is installed"):
            engine_model_of(es, "nope")
    finally:
        delete_index(es, index)


def test_engine_ingest_counts_truncated_and_failures(es, engine_model, tmp_path):
    index = f"xlir-test-{uuid.uuid4().hex[:8]}"
    docs = [
        {"id": "ok", "lang": "de", "text": "Berlin ist die Hauptstadt."},
        {"id": "long", "lang": "en", "text": long_text(MULTILINGUAL)},
        {"id": "bad", "lang": "en"},  # no text: refused before anything is sent
    ]
    try:
        report = engine_ingest(
            es,
            index,
            engine_model_of(es, engine_model),
            docs,
            progress=False,
            failures_path=tmp_path / "failures.jsonl",
        )
        assert (report.indexed, report.failed, report.truncated) == (2, 1, 1)
        assert sources(es, index)["long"][TRUNCATED_FIELD] is True
    finally:
        delete_index(es, index)
