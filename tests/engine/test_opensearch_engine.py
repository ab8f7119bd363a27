"""The XLIR OpenSearch plugin on the session's OpenSearch node: `xlir_embed` vectors equal the
Python encoder's, `xlir_knn` returns the client path's top 10 in the three modes, bad
documents are per-document errors on a green node.

The node has the plugin when plugins/opensearch was built (`scripts/setup.sh`; or
`XLIR_OS_PLUGIN_ZIP` names a zip); without it these tests skip and say so. The synthetic model of
`tests/engine/conftest.py` is copied into the node's models directory (which the plugin
reports) under a test-only name.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from opensearchpy.exceptions import TransportError

from tests.engine.conftest import DIM, MULTILINGUAL, cosines, long_text, wait_until_served
from xlir_plugin.cli import main
from xlir_plugin.engine_install import install_model, remove_model
from xlir_plugin.index import create_index, delete_index
from xlir_plugin.ingest import ingest
from xlir_plugin.manifest import Manifest
from xlir_plugin.search import lang_filter, search

pytestmark = pytest.mark.opensearch

MODES = [("multilingual", None, None), ("cross", "de", "en,es"), ("mono", "ru", None)]


def xlir_models(opensearch, name: str = "") -> dict:
    return opensearch.transport.perform_request("GET", f"/_xlir/models{'/' + name if name else ''}")


@pytest.fixture(scope="module")
def os_model(opensearch, opensearch_settings, synthetic_export) -> str:
    """The synthetic model installed on the node (`engine_install.install_model`, as `xlir os
    install-model` does), once the plugin answers for it."""
    try:
        xlir_models(opensearch)
    except TransportError as exc:
        pytest.skip(f"the OpenSearch node has no xlir plugin (build plugins/opensearch): {exc}")
    name = f"xlir-test-{uuid.uuid4().hex[:8]}"
    (installed,) = install_model(synthetic_export, name, opensearch_settings, future_nodes=False)
    assert installed == Path(xlir_models(opensearch)["models_dir"]) / name
    wait_until_served(lambda: xlir_models(opensearch, name), name, TransportError)
    yield name
    remove_model(name, opensearch_settings, future_nodes=False)


@pytest.fixture
def os_index(opensearch, synthetic_export):
    name = f"xlir-test-{uuid.uuid4().hex[:10]}"
    create_index(opensearch, name, Manifest.load(synthetic_export))
    yield name
    delete_index(opensearch, name)


def pipeline_for(opensearch, model: str) -> str:
    pipeline = f"xlir-test-{uuid.uuid4().hex[:8]}"
    processor = {"model": model, "field_map": {"text": "embedding"}, "input_type": "passage"}
    opensearch.ingest.put_pipeline(id=pipeline, body={"processors": [{"xlir_embed": processor}]})
    return pipeline


def bulk(opensearch, index: str, pipeline: str, docs: list[dict]) -> list[dict]:
    ops = []
    for i, doc in enumerate(docs):
        ops += [{"index": {"_index": index, "_id": doc.get("id", str(i))}}, doc]
    resp = opensearch.bulk(body=ops, pipeline=pipeline, refresh=True)
    return [item["index"] for item in resp["items"]]


def test_opensearch_processor_embeds_like_the_python_encoder(
    opensearch, os_model, os_index, encoder, sentences
):
    docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences[::20]]
    docs.append({"id": "long", "lang": "en", "text": long_text(MULTILINGUAL)})
    docs += [{"id": f"m{i}", "lang": "xx", "text": t} for i, t in enumerate(MULTILINGUAL)]
    items = bulk(opensearch, os_index, pipeline_for(opensearch, os_model), docs)
    assert [i for i in items if "error" in i] == []
    hits = opensearch.search(index=os_index, body={"query": {"match_all": {}}, "size": 1000})
    by_id = {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}
    got = np.asarray([by_id[d["id"]]["embedding"] for d in docs], dtype=np.float32)
    assert got.shape == (len(docs), DIM)
    expected = encoder.encode_passages([d["text"] for d in docs], warn=False)
    assert cosines(got, expected).min() >= 0.9999
    assert by_id["long"]["embedding_truncated"] is True
    assert "embedding_truncated" not in by_id[docs[0]["id"]]


def test_opensearch_processor_bad_documents_are_per_document_errors(opensearch, os_model, os_index):
    docs = [{"title": "no text field"}, {"text": 42}, {"id": "ok", "text": "Berlin", "lang": "de"}]
    items = bulk(opensearch, os_index, pipeline_for(opensearch, os_model), docs)
    assert ["error" in item for item in items] == [True, True, False]
    reasons = [item["error"]["reason"] for item in items[:2]]
    assert "field [text] is missing" in reasons[0] and "not a string" in reasons[1]
    unknown = bulk(opensearch, os_index, pipeline_for(opensearch, "no-such-model"), docs[2:])
    assert "no-such-model" in unknown[0]["error"]["reason"]
    assert opensearch.cluster.health()["status"] == "green"


def test_opensearch_xlir_knn_gives_the_client_paths_top_10(
    opensearch, os_model, os_index, encoder, sentences
):
    report = ingest(opensearch, os_index, encoder, sentences, progress=False)
    assert report.failed == 0
    for i, doc in enumerate(sentences[::90]):
        mode, lang, targets = MODES[i % len(MODES)]
        client = search(opensearch, os_index, encoder, doc["text"], mode, lang, targets, k=10)
        knn = {"field": "embedding", "text": doc["text"], "model": os_model, "k": 100}
        if f := lang_filter(mode, lang, targets):
            knn["filter"] = f
        body = {"query": {"xlir_knn": knn}, "size": 10, "_source": ["lang"]}
        engine = opensearch.search(index=os_index, body=body)["hits"]["hits"]
        assert {h["_id"] for h in engine} == {h.id for h in client}, (mode, doc["id"])
        assert len(engine) == 10 and all(f is None or h["_source"]["lang"] != "xx" for h in engine)
    assert opensearch.cluster.health()["status"] == "green"


def test_opensearch_cli_install_model_reaches_the_node_and_later_nodes(
    opensearch, opensearch_settings, os_model, synthetic_export, capsys
):
    """`xlir os install-model`: into the running node's models directory and the local
    OpenSearch home's (for nodes started later); the plugin then lists it."""
    name = f"xlir-test-cli-{uuid.uuid4().hex[:8]}"
    args = ["os", "install-model", "--model", str(synthetic_export), "--name", name, "--json",
            "--es-url", opensearch_settings.url]  # fmt: skip
    try:
        assert main(args) == 0
        installed = [Path(p) for p in json.loads(capsys.readouterr().out)["installed"]]
        node_dir = Path(xlir_models(opensearch)["models_dir"]) / name
        assert node_dir in installed and len(installed) == 2
        assert all((p / "model.onnx").is_file() for p in installed)
    finally:
        remove_model(name, opensearch_settings)
    assert not node_dir.exists()


def test_opensearch_cli_in_engine_index_and_search_match_the_client_path(
    opensearch, opensearch_settings, os_model, encoder, sentences, tmp_path, capsys
):
    """`xlir index|search --in-engine --engine opensearch`: the node embeds documents through
    the `xlir-<model>` pipeline and queries through `xlir_knn`; the hits equal the client
    path's (Python embeds the query) on the same index, in the three modes; the truncated and
    the failed documents are counted."""
    from xlir_plugin.engine import engine_model, engine_search

    name = f"xlir-test-cli-{uuid.uuid4().hex[:8]}"
    docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences[:300]]
    docs += [{"id": "long", "lang": "en", "text": long_text(MULTILINGUAL)}, {"id": "bad"}]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    where = ["--engine", "opensearch", "--es-url", opensearch_settings.url, "--model", os_model]
    try:
        argv = ["index", "--in-engine", "--index", name, "--input", str(path), "--json"]
        assert main([*argv, "--failures", str(tmp_path / "failures.jsonl"), *where]) == 1
        report = json.loads(capsys.readouterr().out)
        assert (report["indexed"], report["failed"]) == (301, 1)
        long = opensearch.get(index=name, id="long")["_source"]
        truncated = {"term": {"embedding_truncated": True}}
        assert long["embedding_truncated"] is True  # (the synthetic model reads 128 tokens)
        assert (
            report["truncated"] == opensearch.count(index=name, body={"query": truncated})["count"]
        )
        settings = opensearch.indices.get_settings(index=name)[name]["settings"]["index"]
        assert settings["default_pipeline"] == f"xlir-{os_model}"
        model = engine_model(opensearch, os_model)
        for i, doc in enumerate(docs[:300:50]):
            mode, lang, targets = MODES[i % len(MODES)]
            got = engine_search(opensearch, name, model, doc["text"], mode, lang, targets)
            want = search(opensearch, name, encoder, doc["text"], mode, lang, targets)
            assert [h.id for h in got] == [h.id for h in want], (mode, doc["id"])
            assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-4)
        query = ["search", docs[0]["text"], "--in-engine", "--index", name, "--json"]
        lang = docs[0]["lang"]
        assert main([*query, "--mode", "mono", "--lang", lang, *where]) == 0
        hits = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(hits) == 10 and {h["lang"] for h in hits} == {lang}
    finally:
        delete_index(opensearch, name)
    assert opensearch.cluster.health()["status"] == "green"
