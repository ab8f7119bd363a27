"""The `xlir` Elasticsearch plugin's REST side, on the session's node: installed models,
vectors equal to the Python encoder's, bad requests, the index stamp, models replaced or
broken on disk. (Processor and query builder: `test_processor_engine.py`.)"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from elasticsearch import ApiError

from tests.engine.conftest import (
    DIM,
    MULTILINGUAL,
    build_other_model,
    bulk_with,
    call,
    cosines,
    error_reason,
    long_text,
    put_pipeline,
    sources,
)
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.engine_install import copy_model, install_model, remove_model
from xlir_plugin.index import create_index
from xlir_plugin.manifest import Manifest

pytestmark = [pytest.mark.es]


def test_es_plugin_is_installed(es):
    plugins = es.cat.plugins(format="json")
    assert any(p["component"] == "xlir" for p in plugins), plugins


def test_engine_models_lists_the_installed_model(es, engine_model, synthetic_export):
    import onnxruntime

    manifest = Manifest.load(synthetic_export)
    listed = call(es, "GET", "/_xlir/models")
    entry = next(m for m in listed["models"] if m["name"] == engine_model)
    assert entry["dims"] == manifest.dim
    assert entry["sha256"] == manifest.sha256
    assert entry["quantization"] == manifest.quantization
    assert entry["model"] == manifest.model_name
    assert "provenance" in entry
    assert listed["runtime"]["onnxruntime"] == onnxruntime.__version__  # the pin
    one = call(es, "GET", f"/_xlir/models/{engine_model}")
    assert [m["name"] for m in one["models"]] == [engine_model]


@pytest.mark.parametrize("kind", ["query", "passage"])
def test_engine_embed_matches_the_python_encoder(es, engine_model, encoder, sentences, kind):
    texts = MULTILINGUAL + [s["text"] for s in sentences[::15]] + [long_text(MULTILINGUAL)]
    resp = call(
        es, "POST", "/_xlir/embed", {"model": engine_model, "texts": texts, "input_type": kind}
    )
    expected = encoder.encode(texts, kind, warn=False)
    got = np.asarray(resp["vectors"], dtype=np.float32)
    assert resp["dims"] == expected.shape[1] == got.shape[1]
    assert cosines(got, expected).min() >= 0.9999
    assert resp["truncated"][-1] is True  # the 10k-character text
    assert sum(resp["truncated"]) == encoder.last_truncated


def e5_export() -> Path:
    """The int8 default export: XLIR_ENGINE_DEFAULT_ONNX, else the cached one (built once,
    without torch, when missing or of an older recipe)."""
    env = os.environ.get("XLIR_ENGINE_DEFAULT_ONNX")
    if env:
        return Path(env)
    from export import ensure_exported

    return ensure_exported("default", "int8")


@pytest.fixture(scope="module")
def e5_model(es_settings):
    export = e5_export()
    name = f"xlir-test-e5-{uuid.uuid4().hex[:8]}"
    install_model(export, name, es_settings, future_nodes=False)
    yield name, export
    remove_model(name, es_settings, future_nodes=False)


@pytest.mark.slow
def test_engine_e5_int8_model_matches_the_python_encoder(es, e5_model, sentences):
    """The real model (int8, XLM-R SentencePiece tokenizer): same onnxruntime, same vectors."""
    name, export = e5_model
    e5 = OnnxEncoder(export, threads=2)
    texts = MULTILINGUAL + [s["text"] for s in sentences[::40]] + [long_text(MULTILINGUAL)]
    for kind in ("query", "passage"):
        body = {"model": name, "texts": texts, "input_type": kind}
        resp = call(es, "POST", "/_xlir/embed", body)
        expected = e5.encode(texts, kind, warn=False)
        assert cosines(np.asarray(resp["vectors"]), expected).min() >= 0.9999


@pytest.mark.slow
def test_engine_bulk_of_many_gives_each_document_its_vector_alone(
    es, e5_model, sentences, index_name
):
    """Documents ingested through the pipeline in one bulk (the plugin batches them) get the
    vector the client computes for each text alone: int8 scales are fixed at export."""
    name, export = e5_model
    docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences[::12]]
    docs += [{"id": f"m{i}", "lang": "xx", "text": t} for i, t in enumerate(MULTILINGUAL)]
    docs.append({"id": "long", "lang": "en", "text": long_text(MULTILINGUAL)})
    create_index(es, index_name, Manifest.load(export))
    items = bulk_with(es, index_name, put_pipeline(es, name, input_type="passage"), docs)
    assert len(docs) >= 90 and [i for i in items if "error" in i] == []
    by_id = sources(es, index_name)
    got = np.asarray([by_id[d["id"]]["embedding"] for d in docs], dtype=np.float32)
    e5 = OnnxEncoder(export, threads=2)
    alone = np.stack([e5.encode([d["text"]], "passage", warn=False)[0] for d in docs])
    assert cosines(got, alone).min() >= 0.99999
    assert np.abs(got - alone).max() < 1e-4  # float32 vectors; the engine stores them as sent


def test_engine_embed_rejects_bad_requests(es, engine_model):
    cases = [
        ({"model": "no-such-model", "texts": ["x"]}, 404, "[no-such-model] is not installed"),
        ({"model": engine_model, "texts": []}, 400, "texts"),
        ({"model": engine_model, "texts": ["ok", 3]}, 400, "index 1"),
        ({"model": engine_model, "texts": ["x"], "input_type": "doc"}, 400, "input_type"),
        ({"model": "../etc", "texts": ["x"]}, 400, "invalid xlir model name"),
    ]
    for body, status, reason in cases:
        with pytest.raises(ApiError) as info:
            call(es, "POST", "/_xlir/embed", body)
        assert info.value.meta.status == status, body
        assert reason in error_reason(info.value), (body, error_reason(info.value))
    assert es.cluster.health()["status"] != "red"


def test_engine_embed_checks_the_index_stamp(es, engine_model, engine_index, tmp_path):
    body = {"model": engine_model, "texts": ["x"]}
    ok = call(es, "POST", "/_xlir/embed", body, {"index": engine_index})
    assert len(ok["vectors"]) == 1
    other = build_other_model(tmp_path / "other", 9, "synthetic/other")
    other_index = f"{engine_index}-other"
    create_index(es, other_index, Manifest.load(other))
    try:
        with pytest.raises(ApiError) as info:
            call(es, "POST", "/_xlir/embed", body, {"index": other_index})
        assert info.value.meta.status == 400
        reason = error_reason(info.value)
        assert "synthetic/other@none" in reason and "synthetic/unigram@none" in reason, reason
        models = call(es, "GET", "/_xlir/models", params={"index": other_index})
        entry = next(m for m in models["models"] if m["name"] == engine_model)
        assert entry["matches_index"] is False
    finally:
        es.options(ignore_status=404).indices.delete(index=other_index)


def test_engine_reloads_a_model_replaced_on_disk(es, es_settings, synthetic_export, tmp_path):
    """`xlir es install-model` over an installed name is picked up without a restart."""
    name = f"xlir-test-swap-{uuid.uuid4().hex[:8]}"
    install_model(synthetic_export, name, es_settings, future_nodes=False)
    try:
        embed = {"model": name, "texts": ["Berlin"]}
        before = call(es, "POST", "/_xlir/embed", embed)["vectors"][0]
        other = build_other_model(tmp_path / "other", 11, "synthetic/swap")
        install_model(other, name, es_settings, future_nodes=False)
        time.sleep(2.5)  # the plugin re-checks a model's files at most every 2 s
        resp = call(es, "POST", "/_xlir/embed", embed)
        assert resp["model_name"] == "synthetic/swap@none"
        expected = OnnxEncoder(other).encode_queries(["Berlin"])
        assert cosines(np.asarray(resp["vectors"]), expected).min() >= 0.9999
        assert cosines(np.asarray([before]), expected).min() < 0.99
    finally:
        remove_model(name, es_settings, future_nodes=False)


@pytest.mark.parametrize("damage", ["flip_byte", "drop_tokenizer", "bad_manifest"])
def test_processor_corrupt_model_names_model_and_file(es, synthetic_export, engine_index, damage):
    models_dir = Path(call(es, "GET", "/_xlir/models")["models_dir"])
    name = f"xlir-test-broken-{uuid.uuid4().hex[:8]}"
    target = copy_model(synthetic_export, models_dir, name)
    try:
        if damage == "flip_byte":
            data = bytearray((target / "model.onnx").read_bytes())
            data[len(data) // 2] ^= 0xFF
            (target / "model.onnx").write_bytes(bytes(data))
            expected = ["model.onnx", "sha256"]
        elif damage == "drop_tokenizer":
            (target / "tokenizer.json").unlink()
            expected = ["[tokenizer.json] is missing"]
        else:
            (target / "xlir.json").write_text("{not json")
            expected = ["[xlir.json]", "not a valid manifest"]
        with pytest.raises(ApiError) as info:
            call(es, "POST", "/_xlir/embed", {"model": name, "texts": ["x"]})
        reason = error_reason(info.value)
        assert f"xlir model [{name}]" in reason and all(e in reason for e in expected), reason
        pipeline = put_pipeline(es, name)
        (item,) = bulk_with(es, engine_index, pipeline, [{"text": "Berlin"}])
        assert f"xlir model [{name}]" in item["error"]["reason"], item
        assert es.cluster.health()["status"] != "red"
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_es_plugin_install_model_refuses_a_damaged_export(es_settings, synthetic_export, tmp_path):
    from xlir_plugin.errors import InputError

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in ("model.onnx", "xlir.json"):
        (broken / f).write_bytes((synthetic_export / f).read_bytes())
    with pytest.raises(InputError, match="tokenizer.json missing"):
        install_model(broken, "xlir-test-broken", es_settings, future_nodes=False)
    (broken / "tokenizer.json").write_text("{}")
    (broken / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(InputError, match="does not match the sha256"):
        install_model(broken, "xlir-test-broken", es_settings, future_nodes=False)
    assert Manifest.load(synthetic_export).dim == DIM


def test_engine_without_the_plugin_says_how_to_get_it(es):
    """A cluster without the plugin answers `no handler found`; the user reads what to do."""
    from xlir_plugin.engine import PluginMissing
    from xlir_plugin.engine import call as engine_call

    with pytest.raises(PluginMissing, match="scripts/setup.sh"):
        engine_call(es, "GET", "/_xlir/no/such/route/here")
