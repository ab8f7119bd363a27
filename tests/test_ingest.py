"""Ingest: validation, deterministic ids, failures with line numbers, retries, pipelines."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import numpy as np
import pytest

from tests.onnx_fixtures import build_onnx_model, words_of
from xlir_plugin.bulk import PAUSED_REFRESH_KEY, source_json
from xlir_plugin.documents import Doc, Failure, InvalidDocument, doc_id, prepare, read_jsonl
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.errors import InputError, ModelMismatch
from xlir_plugin.index import create_index
from xlir_plugin.ingest import ingest
from xlir_plugin.schema import VECTOR_FIELD

DOCS = [
    {"id": "en-1", "lang": "en", "text": "Berlin is the capital of Germany."},
    {"id": "de-1", "lang": "de", "text": "Berlin ist die Hauptstadt von Deutschland."},
    {"id": "es-1", "lang": "es", "text": "Madrid es la capital de España.", "title": "España"},
    {"id": "fr-1", "lang": "FR", "text": "Paris est la capitale de la France.", "year": 2024},
    {"lang": "en", "text": "A document without an id gets a hash of lang and text."},
]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> OnnxEncoder:
    path = tmp_path_factory.mktemp("model")
    build_onnx_model(path, words_of(d["text"] for d in DOCS), dim=16)
    return OnnxEncoder(path, threads=1)


@pytest.fixture(scope="module")
def other_encoder(tmp_path_factory) -> OnnxEncoder:
    path = tmp_path_factory.mktemp("other")
    build_onnx_model(path, words_of(d["text"] for d in DOCS), dim=16, seed=1)
    return OnnxEncoder(path)


def write_jsonl(path, rows) -> str:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return str(path)


def count(es, index) -> int:
    return es.count(index=index)["count"]


# -- no node needed ---------------------------------------------------------------------------


def test_doc_id_is_deterministic():
    assert doc_id({"id": 7, "lang": "en", "text": "x"}) == "7"
    expected = hashlib.sha1(b"en\nhello").hexdigest()
    assert doc_id({"lang": "en", "text": "hello"}) == expected
    assert doc_id({"id": "", "lang": "en", "text": "hello"}) == expected


def test_read_jsonl_reports_bad_lines(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [DOCS[0], "{not json", "", "[1, 2]", DOCS[1]])
    (tmp_path / "bin.jsonl").write_bytes(b'{"text": "\xff"}\n')
    records = list(read_jsonl(path))
    assert [type(r).__name__ for r in records] == ["Doc", "Failure", "Doc", "Doc"]
    assert [r.line for r in records] == [1, 2, 4, 5]  # the blank line 3 is skipped
    assert "bad JSON" in records[1].reason and records[1].stage == "read"
    (bad,) = read_jsonl(tmp_path / "bin.jsonl")
    assert isinstance(bad, Failure) and "UTF-8" in bad.reason
    with pytest.raises(InputError, match="does not exist"):
        list(read_jsonl(tmp_path / "missing.jsonl"))


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"lang": "en"}, "missing `text`"),
        ({"text": "x"}, "missing `lang`"),
        ({"text": "  ", "lang": "en"}, "`text` is empty"),
        ({"text": 5, "lang": "en"}, "`text` is int"),
        ({"text": "x", "lang": "en", "id": [1]}, "`id` is list"),
        ({"text": "x", "lang": "en", "_id": "a"}, "reserved"),
        ({"text": "x", "lang": "en", "embedding": [1.0, 2.0]}, "has 2 dims, the index expects 4"),
        ({"text": "x", "lang": "en", "embedding": [1, 2, "a", 4]}, "not a finite number"),
        ({"text": "x", "lang": "en", "embedding": [0, 0, 0, 0]}, "all zeros"),
        (["x"], "not a JSON object"),
    ],
)
def test_prepare_rejects(doc, reason):
    with pytest.raises(InvalidDocument, match=reason):
        prepare(doc, dims=4)


def test_prepare_keeps_extra_fields():
    _id, body, vector = prepare({"id": 3, "lang": " DE ", "text": "t", "url": "u"}, dims=2)
    assert _id == "3" and body == {"id": "3", "lang": "de", "text": "t", "url": "u"}
    assert vector is None


# -- against the node -------------------------------------------------------------------------


@pytest.mark.es
def test_ingest_round_trip_and_rerun_does_not_duplicate(es, index_name, encoder, tmp_path):
    path = write_jsonl(tmp_path / "docs.jsonl", DOCS)
    report = ingest(es, index_name, encoder, path, progress=False)
    assert (report.read, report.indexed, report.created, report.failed) == (5, 5, 5, 0)
    assert report.seconds > 0 and report.docs_per_s > 0
    assert count(es, index_name) == 5
    stored = es.get(index=index_name, id="fr-1")["_source"]
    assert stored["lang"] == "fr" and stored["year"] == 2024
    hashed = doc_id(DOCS[4])
    assert es.get(index=index_name, id=hashed)["_source"]["id"] == hashed
    # the stored vector is the encoder's passage vector
    got = es.search(
        index=index_name,
        query={"ids": {"values": ["de-1"]}},
        fields=["embedding"],
        _source=False,
    )["hits"]["hits"][0]["fields"]["embedding"]
    np.testing.assert_allclose(got, encoder.encode_passages([DOCS[1]["text"]])[0], atol=1e-5)

    again = ingest(es, index_name, encoder, path, progress=False, skip_unchanged=False)
    assert (again.indexed, again.created, again.updated) == (5, 0, 5)
    assert count(es, index_name) == 5
    assert "indexed 5" in again.summary() and again.as_dict()["failed"] == 0
    # by default a re-run skips what is indexed unchanged: nothing encoded, nothing sent
    resumed = ingest(es, index_name, encoder, path, progress=False)
    assert (resumed.indexed, resumed.skipped, resumed.failed) == (0, 5, 0)
    assert resumed.encode_seconds == 0 and count(es, index_name) == 5


@pytest.mark.es
def test_three_malformed_lines_are_reported_with_line_numbers(es, index_name, encoder, tmp_path):
    rows = [
        DOCS[0],
        "{this is not json",
        DOCS[1],
        {"id": "no-lang", "text": "a text without a language"},
        DOCS[2],
        {"id": "bad-vec", "lang": "en", "text": "vector too short", "embedding": [0.1, 0.2]},
        DOCS[3],
    ]
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    failures = tmp_path / "out" / "failures.jsonl"
    report = ingest(es, index_name, encoder, path, failures_path=failures, progress=False)
    assert (report.read, report.indexed, report.failed) == (7, 4, 3)
    assert count(es, index_name) == 4
    assert [(f.line, f.id) for f in report.failures] == [(2, None), (4, "no-lang"), (6, "bad-vec")]
    written = [json.loads(line) for line in failures.read_text().splitlines()]
    assert [w["line"] for w in written] == [2, 4, 6]
    assert "bad JSON" in written[0]["reason"]
    assert "missing `lang`" in written[1]["reason"]
    assert "2 dims, the index expects 16" in written[2]["reason"]
    assert report.failures_path == str(failures) and str(failures) in report.summary()


@pytest.mark.es
def test_other_model_fails_before_sending(es, index_name, encoder, other_encoder):
    create_index(es, index_name, encoder.manifest)
    touched = []

    def docs():
        touched.append(True)
        yield from DOCS

    with pytest.raises(ModelMismatch, match="sha256"):
        ingest(es, index_name, other_encoder, docs(), progress=False)
    assert not touched and count(es, index_name) == 0


@pytest.mark.es
def test_precomputed_vectors_without_encoder(es, index_name, encoder):
    create_index(es, index_name, encoder.manifest)
    rng = np.random.default_rng(0)
    docs = [dict(d, embedding=rng.standard_normal(16)) for d in DOCS[:3]]
    docs.append({"id": "needs-encoder", "lang": "en", "text": "no vector here"})
    report = ingest(es, index_name, None, docs, progress=False)
    assert (report.indexed, report.failed) == (3, 1)
    assert "no encoder" in report.failures[0].reason and report.failures[0].line == 4
    with pytest.raises(InputError, match="does not exist"):
        ingest(es, index_name + "-missing", None, docs, progress=False)


@pytest.mark.es
def test_dataset_source(es, index_name, encoder):
    import datasets  # a dev dependency: missing means failing

    ds = datasets.Dataset.from_list(
        [{"id": d["id"], "lang": d["lang"], "text": d["text"]} for d in DOCS[:4]]
    )
    report = ingest(es, index_name, encoder, ds, progress=False)
    assert report.indexed == 4 and count(es, index_name) == 4


@pytest.mark.es
def test_pipeline_is_passed_through(es, index_name, encoder):
    pipeline = f"{index_name}-pipe"
    es.ingest.put_pipeline(id=pipeline, processors=[], description="xlir test")
    try:
        report = ingest(es, index_name, encoder, DOCS, pipeline=pipeline, progress=False)
        assert report.indexed == 5
        missing = ingest(es, index_name, encoder, DOCS, pipeline=pipeline + "-nope", progress=False)
        assert (missing.indexed, missing.failed) == (0, 5)
        assert all(f.status == 400 and "pipeline" in f.reason for f in missing.failures)
        assert sorted(f.line for f in missing.failures) == [1, 2, 3, 4, 5]
    finally:
        es.ingest.delete_pipeline(id=pipeline)


@pytest.mark.es
def test_429_is_retried_with_backoff_then_reported(es, index_name, encoder):
    create_index(es, index_name, encoder.manifest)
    block = {"index.blocks.read_only_allow_delete": True}
    es.indices.put_settings(index=index_name, settings=block)  # bulk answers 429
    try:
        report = ingest(
            es,
            index_name,
            encoder,
            DOCS[:2],
            max_retries=1,
            initial_backoff=0.05,
            refresh=False,
            progress=False,
        )
        assert (report.indexed, report.failed) == (0, 2)
        assert {f.status for f in report.failures} == {429}

        def unblock():
            time.sleep(0.6)
            es.indices.put_settings(
                index=index_name, settings={"index.blocks.read_only_allow_delete": None}
            )

        thread = threading.Thread(target=unblock)
        thread.start()
        report = ingest(
            es, index_name, encoder, DOCS, max_retries=6, initial_backoff=0.1, progress=False
        )
        thread.join()
        assert (report.indexed, report.failed) == (5, 0)
        assert count(es, index_name) == 5
    finally:
        es.indices.put_settings(
            index=index_name, settings={"index.blocks.read_only_allow_delete": None}
        )


@pytest.mark.es
def test_docs_are_accepted_as_records(es, index_name, encoder):
    records = [Doc(10, DOCS[0]), Failure(11, None, "upstream problem", "read")]
    report = ingest(es, index_name, encoder, records, progress=False)
    assert (report.read, report.indexed, report.failed) == (2, 1, 1)


@pytest.mark.es
def test_truncation_is_counted_once_per_ingest(es, index_name, encoder, caplog):
    long_doc = {"id": "long", "lang": "en", "text": " ".join(["Berlin"] * 200)}
    with caplog.at_level("WARNING"):
        report = ingest(es, index_name, encoder, [long_doc, *DOCS], batch_size=2, progress=False)
    assert report.indexed == 6 and report.truncated == 1
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert warnings == ["1 of 6 document(s) were longer than 64 tokens and were truncated"]
    assert "1 truncated" in report.summary()


# -- what makes a load fast: vectors written short but exact, one refresh ----------------------


def test_float32_vectors_are_written_short_and_read_back_the_same():
    rng = np.random.default_rng(3)
    vector = rng.standard_normal(384).astype(np.float32)
    vector[:4] = [1e-45, -3.4028235e38, -0.0, 1 / 3]  # smallest subnormal, largest, signed zero
    source = {
        "id": "a",
        "lang": "el",
        "text": 'Ελλάδα "quoted"',
        "year": 2024,
        VECTOR_FIELD: vector,
    }
    line = source_json(source)
    back = json.loads(line)
    assert np.array_equal(np.array(back.pop(VECTOR_FIELD), dtype=np.float32), vector)
    assert back == {k: v for k, v in source.items() if k != VECTOR_FIELD}
    assert "Ελλάδα" in line and len(line) < len(json.dumps(vector.tolist()))
    listed = dict(source, **{VECTOR_FIELD: [0.1, 0.2]})  # a given vector is written as json does
    assert json.loads(source_json(listed))[VECTOR_FIELD] == [0.1, 0.2]


@pytest.mark.es
def test_stored_vectors_are_the_encoders_float32_exactly(es, index_name, encoder):
    report = ingest(es, index_name, encoder, DOCS, progress=False)
    assert report.indexed == 5
    hits = es.search(index=index_name, size=10, _source=["id", VECTOR_FIELD])["hits"]["hits"]
    stored = {h["_source"]["id"]: h["_source"][VECTOR_FIELD] for h in hits}
    wanted = encoder.encode_passages([d["text"] for d in DOCS])  # the same batch as ingest's
    got = np.array([stored[doc_id(d)] for d in DOCS], dtype=np.float32)
    np.testing.assert_array_equal(got, wanted)


def refresh_interval(es, index) -> str | None:
    return es.indices.get_settings(index=index)[index]["settings"]["index"].get("refresh_interval")


@pytest.mark.es
def test_refresh_is_paused_for_the_load_and_put_back(es, index_name, encoder):
    create_index(es, index_name, encoder.manifest)
    es.indices.put_settings(index=index_name, settings={"index.refresh_interval": "7s"})
    seen = []

    def docs():  # read by the embedding thread while the load runs
        yield from DOCS[:3]
        seen.append(refresh_interval(es, index_name))
        yield from DOCS[3:]

    report = ingest(es, index_name, encoder, docs(), batch_size=2, progress=False)
    assert report.indexed == 5 and seen == ["-1"]
    assert refresh_interval(es, index_name) == "7s" and count(es, index_name) == 5
    meta = es.indices.get_mapping(index=index_name)[index_name]["mappings"]["_meta"]
    assert list(meta) == ["xlir"]  # nothing left behind beside the model stamp

    # a load cut short left refreshes off and said what to put back: the next run does it
    es.indices.put_mapping(index=index_name, meta=meta | {PAUSED_REFRESH_KEY: "5s"})
    es.indices.put_settings(index=index_name, settings={"index.refresh_interval": "-1"})
    ingest(es, index_name, encoder, DOCS, skip_unchanged=False, progress=False)
    assert refresh_interval(es, index_name) == "5s"
    assert (
        PAUSED_REFRESH_KEY
        not in es.indices.get_mapping(index=index_name)[index_name]["mappings"]["_meta"]
    )

    # refreshes turned off by the owner stay off; the documents are refreshed all the same
    es.indices.put_settings(index=index_name, settings={"index.refresh_interval": "-1"})
    more = [dict(d, id=f"{d.get('id', 'x')}-2") for d in DOCS]
    ingest(es, index_name, encoder, more, progress=False)
    assert refresh_interval(es, index_name) == "-1" and count(es, index_name) == 10
