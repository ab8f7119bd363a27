"""Long documents on real nodes of both engines: a chunked index (nested `passages`, one
vector per passage), its stamp and the refusal of other chunking settings, the vectors it
holds, the nested kNN search that returns each document with its best passages, and the
per-document outcomes of bad input (nothing else lost)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from tests.onnx_fixtures import build_onnx_model, words_of
from xlir_plugin.chunking import Chunker, ChunkSettings
from xlir_plugin.cli import main
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.errors import ModelMismatch
from xlir_plugin.index import delete_index, index_meta
from xlir_plugin.ingest import ingest
from xlir_plugin.search import search, search_vector

CHUNKS = ChunkSettings(16, 4)
TOPICS = [
    "The river flows south through the valley and floods the lower town in spring.",
    "Farmers grow wheat and barley on the plateau above the river.",
    "The council rebuilt the market after the great fire of the old quarter.",
    "Die Universität hat eine große Bibliothek und ein Museum für Musik.",
    "Visitors walk along the quiet roads to the orchards and the vineyards.",
]
LONG = " ".join(TOPICS * 2)  # ~140 tokens: several passages of 16
DOCS = [
    {"id": "long-en", "lang": "en", "text": LONG, "title": "valley"},
    {"id": "short-de", "lang": "de", "text": TOPICS[3]},
    {"id": "short-en", "lang": "en", "text": TOPICS[1]},
]
BAD = [
    {"id": "empty", "lang": "en", "text": ""},
    {"id": "blank", "lang": "en", "text": " \n\t "},
    {"id": "markup", "lang": "en", "text": "<p></p>"},
    {"id": "one-line", "lang": "en", "text": "riverfloods" * 9_091},  # 100k chars, no boundary
]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> OnnxEncoder:
    path = tmp_path_factory.mktemp("long-model")
    build_onnx_model(path, words_of(["query:", "passage:", *TOPICS]), dim=16, max_length=64)
    return OnnxEncoder(path)


@pytest.fixture(params=["es", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def client(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def chunked(client, encoder):
    name = f"xlir-test-long-{uuid.uuid4().hex[:10]}"
    report = ingest(client, name, encoder, DOCS + BAD, progress=False, chunking=CHUNKS)
    yield name, report
    delete_index(client, name)


def stored(client, index, _id):
    """The stored source, vectors included (Elasticsearch 9 leaves them out unless asked)."""
    body = {"query": {"ids": {"values": [_id]}}}
    if "Elasticsearch" in type(client).__name__:
        body["_source"] = {"exclude_vectors": False}
    return client.search(index=index, body=body)["hits"]["hits"][0]["_source"]


def test_chunked_index_is_nested_passages_stamped_with_its_settings(client, chunked, encoder):
    index, report = chunked
    mappings = client.indices.get_mapping(index=index)[index]["mappings"]
    assert "embedding" not in mappings["properties"]
    passages = mappings["properties"]["passages"]
    assert passages["type"] == "nested"
    assert passages["properties"]["start"] == {"type": "integer"}
    assert passages["properties"]["end"] == {"type": "integer"}
    vector = passages["properties"]["embedding"]
    assert vector["type"] in ("dense_vector", "knn_vector")
    stamp = mappings["_meta"]["xlir"]
    assert stamp["chunking"] == {"max_tokens": 16, "overlap_tokens": 4, "version": 1}
    assert index_meta(client, index)["mapping_dims"] == 16
    assert report.passages > len(DOCS)


def test_each_passage_holds_its_offsets_and_the_vector_of_its_text(client, chunked, encoder):
    index, _ = chunked
    chunker = Chunker.for_encoder(encoder, CHUNKS)
    source = stored(client, index, "long-en")
    spans = [(p["start"], p["end"]) for p in source["passages"]]
    assert spans == chunker.spans(LONG) and len(spans) >= 5
    want = encoder.encode_passages([LONG[a:b] for a, b in spans])
    got = np.array([p["embedding"] for p in source["passages"]], dtype=np.float32)
    assert np.allclose(got, want, atol=1e-6)
    short = stored(client, index, "short-de")["passages"]
    assert [(p["start"], p["end"]) for p in short] == [(0, len(TOPICS[3]))]  # one passage


def test_bad_documents_fail_alone_with_a_reason(client, chunked):
    index, report = chunked
    reasons = {f.id: f.reason for f in report.failures}
    assert reasons == {"empty": "`text` is empty", "blank": "`text` is empty"}
    assert report.indexed == len(DOCS) + 2  # the markup and the 100k-character line too
    line = stored(client, index, "one-line")["passages"]
    assert line[0]["start"] == 0 and line[-1]["end"] == len(BAD[3]["text"])


def test_search_returns_the_document_with_its_best_passages(client, chunked, encoder):
    index, _ = chunked
    chunker = Chunker.for_encoder(encoder, CHUNKS)
    spans = chunker.spans(LONG)
    target = spans[3]
    vector = encoder.encode_passages([LONG[slice(*target)]])[0]
    hits = search_vector(client, index, vector, k=3)
    top = hits[0]
    assert top.id == "long-en" and top.text == LONG
    best = top.passages[0]
    assert (best["start"], best["end"]) == target and best["text"] == LONG[slice(*target)]
    assert len(top.passages) == 3
    assert [p["score"] for p in top.passages] == sorted(
        (p["score"] for p in top.passages), reverse=True
    )
    assert top.score == pytest.approx(best["score"], abs=2e-3)  # the document's: its best
    assert "embedding" not in top.fields and "passages" not in top.fields
    # the language filter on the documents' own field, inside the nested kNN (a pre-filter)
    german = search_vector(client, index, vector, mode="mono", lang="de", k=3)
    assert [h.id for h in german] == ["short-de"]
    assert german[0].passages[0]["start"] == 0
    cross = search(client, index, encoder, "river valley", mode="cross", targets="en", k=10)
    assert {h.id for h in cross} <= {"long-en", "short-en", "markup", "one-line"}
    assert all(h.passages for h in cross)
    assert json.dumps(cross[0].as_dict())  # the JSON a CLI --json line prints


def test_other_chunking_settings_are_refused_before_anything_is_sent(client, chunked, encoder):
    index, _ = chunked
    for other in (ChunkSettings(16), ChunkSettings(32, 4), None):
        with pytest.raises(ModelMismatch, match="new index"):
            ingest(client, index, encoder, DOCS, progress=False, chunking=other)
    plain = f"xlir-test-plain-{uuid.uuid4().hex[:10]}"
    try:
        ingest(client, plain, encoder, DOCS[:1], progress=False)
        with pytest.raises(ModelMismatch, match="not chunked"):
            ingest(client, plain, encoder, DOCS, progress=False, chunking=CHUNKS)
    finally:
        delete_index(client, plain)


def test_rerun_skips_unchanged_documents(client, chunked, encoder):
    index, _ = chunked
    again = ingest(client, index, encoder, DOCS, progress=False, chunking=CHUNKS)
    assert again.skipped == len(DOCS) and again.passages == 0 and again.failed == 0


@pytest.mark.es
def test_cli_index_and_search_a_chunked_index(es, es_settings, encoder, tmp_path, capsys):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps(d) + "\n" for d in DOCS + BAD[:1]))
    name = f"xlir-test-long-cli-{uuid.uuid4().hex[:10]}"
    where = ["--es-url", es_settings.url, "--es-user", es_settings.user]
    where += ["--es-password", es_settings.password]
    model = ["--model", str(encoder.model_dir)]
    try:
        flags = ["--index", name, "--input", str(docs), "--json", *where]
        assert main(["index", *model, *flags, "--chunk-tokens", "16", "--chunk-overlap", "4"]) == 1
        report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert report["indexed"] == 3 and report["failed"] == 1 and report["passages"] > 3
        assert main(["search", "farmers wheat", *model, "--index", name, *where]) == 0
        out = capsys.readouterr().out
        assert "[" in out and "wheat" in out  # the best passage, with its offsets
    finally:
        delete_index(es, name)
