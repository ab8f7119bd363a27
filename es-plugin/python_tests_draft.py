"""In-engine tests: the `xlir` Elasticsearch plugin (es-plugin/) running the exported model.

DRAFT, to be moved to tests/test_es_plugin_engine.py. Needs, from tests/conftest.py:
  es         a client for a node that has the plugin installed
             (`bin/elasticsearch-plugin install --batch file://<zip>` into the node's home);
  xquad_dir  the XQuAD-R data directory.
The tests install their own synthetic model (a Unigram tokenizer trained on XQuAD-R sentences,
an ONNX embedding-bag graph with pooling and normalisation inside) under test-only names into
the node's models directory, which the plugin reports in `GET _xlir/models` (`models_dir`);
the test process must be able to write there (same machine, root) and the node's user must be
able to read what it writes. The plugin loads models lazily, so no restart is needed.
When XLIR_ENGINE_DEFAULT_ONNX names the exported default model directory that is installed on
the node as `default`, the parity test also runs on it.

Names contain `engine`, `es_plugin` or `processor` (issue 13: `pytest -k "engine or es_plugin
or processor"`).
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from elasticsearch import ApiError

from tests import onnx_fixtures
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.index import create_index
from xlir_plugin.manifest import Manifest

pytestmark = [pytest.mark.es]

THAI = "ใครเป็นผู้ก่อตั้งกรุงเทพมหานคร และเมื่อไหร่"
CHINESE = "北京是中华人民共和国的首都，也是全国的政治中心。"
ARABIC = "من هو مؤسس مدينة القاهرة؟"
MULTILINGUAL = [
    THAI,
    CHINESE,
    ARABIC,
    "Wer hat die Relativitätstheorie entwickelt?",
    "¿Cuál es el río más largo del mundo?",
    "Ποια είναι η πρωτεύουσα της Ελλάδας;",
    "Какая самая высокая гора в России?",
    "भारत की राजधानी क्या है?",
    "Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ, ligatures ﬁ ﬂ, emoji 🚀, combining e\u0301",
    "a",
]


# -- helpers ------------------------------------------------------------------------------------


def call(es, method: str, path: str, body=None, params=None) -> dict:
    """A plugin endpoint through the client (raises ApiError on HTTP errors)."""
    headers = {"accept": "application/json"}
    if body is not None:
        headers["content-type"] = "application/json"
    return es.perform_request(method, path, params=params, headers=headers, body=body).body


def error_reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") or {}
    return str(error.get("reason") if isinstance(error, dict) else error)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def models_dir(es) -> Path:
    return Path(call(es, "GET", "/_xlir/models")["models_dir"])


def install_model(es, src: Path, name: str) -> Path:
    """Copy an exported model into the node's models directory, readable by the node's user."""
    target = models_dir(es) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    for parent in (target.parent, target.parent.parent):
        parent.chmod(0o755)
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(src, target)
    for path in [target, *target.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def sources(es, index: str, size: int = 10_000) -> dict[str, dict]:
    """`_source` of every document by id, vectors included (Elasticsearch 9 leaves them out)."""
    hits = es.search(
        index=index, size=size, query={"match_all": {}}, source={"exclude_vectors": False}
    )["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def long_text(texts: list[str], chars: int = 10_000) -> str:
    out = " ".join(texts * (1 + chars // max(1, sum(map(len, texts)))))
    return out[:chars]


def put_pipeline(es, name: str, model: str, **options) -> str:
    pipeline = f"xlir-test-{uuid.uuid4().hex[:8]}"
    processor = {"model": model, "field_map": {"text": "embedding"}, **options}
    es.ingest.put_pipeline(id=pipeline, processors=[{"xlir_embed": processor}])
    return pipeline


def bulk_with(es, index: str, pipeline: str, docs: list[dict]) -> list[dict]:
    """Index docs through the pipeline; return the bulk items (each with error or result)."""
    ops = []
    for i, doc in enumerate(docs):
        ops.append({"index": {"_index": index, "_id": doc.get("id", str(i))}})
        ops.append(doc)
    resp = es.bulk(operations=ops, pipeline=pipeline, refresh=True)
    return [item["index"] for item in resp["items"]]


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sentences(xquad_dir) -> list[dict]:
    langs = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "zh")
    return onnx_fixtures.xquad_sentences(xquad_dir.parent, langs=langs, per_lang=120)


@pytest.fixture(scope="module")
def synthetic_export(tmp_path_factory, sentences) -> Path:
    """An exported model whose tokenizer is a real Unigram (SentencePiece-like) one."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers import trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = list(onnx_fixtures.SPECIALS)
    trainer = trainers.UnigramTrainer(vocab_size=3000, special_tokens=specials, unk_token="<unk>")
    tok.train_from_iterator([s["text"] for s in sentences], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    path = tmp_path_factory.mktemp("engine-model")
    # onnx_fixtures builds its own word-level tokenizer; use the Unigram one instead
    with mock.patch.object(onnx_fixtures, "build_tokenizer", lambda words: tok):
        onnx_fixtures.build_onnx_model(
            path, [], dim=48, max_length=128, seed=3, source_model="synthetic/unigram"
        )
    return path


@pytest.fixture(scope="module")
def engine_model(es, synthetic_export) -> str:
    """The synthetic model installed on the node under a test-only name."""
    name = f"xlir-test-{uuid.uuid4().hex[:8]}"
    target = install_model(es, synthetic_export, name)
    yield name
    shutil.rmtree(target, ignore_errors=True)


@pytest.fixture(scope="module")
def encoder(synthetic_export) -> OnnxEncoder:
    return OnnxEncoder(synthetic_export, threads=2)


@pytest.fixture
def engine_index(es, synthetic_export, index_name) -> str:
    """An index stamped for the synthetic model, as `xlir index` creates it."""
    create_index(es, index_name, Manifest.load(synthetic_export))
    return index_name


# -- plugin and REST ----------------------------------------------------------------------------


def test_es_plugin_is_installed(es):
    plugins = es.cat.plugins(format="json")
    assert any(p["component"] == "xlir" for p in plugins), plugins


def test_engine_models_lists_the_installed_model(es, engine_model, synthetic_export):
    manifest = Manifest.load(synthetic_export)
    listed = call(es, "GET", "/_xlir/models")
    entry = next(m for m in listed["models"] if m["name"] == engine_model)
    assert entry["dims"] == manifest.dim
    assert entry["sha256"] == manifest.sha256
    assert entry["quantization"] == manifest.quantization
    assert entry["model"] == manifest.model_name
    assert "provenance" in entry
    assert {"plugin", "elasticsearch", "onnxruntime"} <= set(listed["runtime"])
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


@pytest.mark.skipif(
    not os.environ.get("XLIR_ENGINE_DEFAULT_ONNX"),
    reason="XLIR_ENGINE_DEFAULT_ONNX (the exported default model installed as `default`) not set",
)
def test_engine_default_model_matches_the_python_encoder(es, sentences):
    import onnxruntime

    runtime = call(es, "GET", "/_xlir/models")["runtime"]["onnxruntime"]
    # int8 kernels differ between onnxruntime versions (cosine ~0.996 between 1.29 and 1.32);
    # the same version in Java and Python gives the same vectors (cosine 0.9999999)
    assert onnxruntime.__version__ == runtime, (
        f"Python has onnxruntime {onnxruntime.__version__}, the plugin {runtime}: pin the same"
    )
    export = Path(os.environ["XLIR_ENGINE_DEFAULT_ONNX"])
    encoder = OnnxEncoder(export)
    texts = MULTILINGUAL + [s["text"] for s in sentences[::40]] + [long_text(MULTILINGUAL)]
    for kind in ("query", "passage"):
        resp = call(es, "POST", "/_xlir/embed", {"model": "default", "texts": texts, "input_type": kind})
        expected = encoder.encode(texts, kind, warn=False)
        assert cosines(np.asarray(resp["vectors"]), expected).min() >= 0.9999


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


def test_engine_embed_checks_the_index_stamp(es, engine_model, engine_index, tmp_path):
    ok = call(es, "POST", "/_xlir/embed", {"model": engine_model, "texts": ["x"]}, {"index": engine_index})
    assert len(ok["vectors"]) == 1
    other = tmp_path / "other"
    onnx_fixtures.build_onnx_model(other, ["x", "y"], dim=48, seed=9, source_model="synthetic/other")
    other_index = f"{engine_index}-other"
    create_index(es, other_index, Manifest.load(other))
    try:
        with pytest.raises(ApiError) as info:
            call(es, "POST", "/_xlir/embed", {"model": engine_model, "texts": ["x"]}, {"index": other_index})
        assert info.value.meta.status == 400
        reason = error_reason(info.value)
        assert "synthetic/other@none" in reason and "synthetic/unigram@none" in reason, reason
        models = call(es, "GET", "/_xlir/models", params={"index": other_index})
        entry = next(m for m in models["models"] if m["name"] == engine_model)
        assert entry["matches_index"] is False
    finally:
        es.options(ignore_status=404).indices.delete(index=other_index)


def test_engine_reloads_a_model_replaced_on_disk(es, synthetic_export, tmp_path):
    """`xlir es install-model` over an installed name is picked up without a restart."""
    import time

    name = f"xlir-test-swap-{uuid.uuid4().hex[:8]}"
    target = install_model(es, synthetic_export, name)
    try:
        before = call(es, "POST", "/_xlir/embed", {"model": name, "texts": ["Berlin"]})["vectors"][0]
        other = tmp_path / "other"
        onnx_fixtures.build_onnx_model(other, ["berlin"], dim=48, seed=11, source_model="synthetic/swap")
        install_model(es, other, name)
        time.sleep(2.5)  # the plugin re-checks a model's files at most every 2 s
        resp = call(es, "POST", "/_xlir/embed", {"model": name, "texts": ["Berlin"]})
        assert resp["model_name"] == "synthetic/swap@none"
        expected = OnnxEncoder(other).encode_queries(["Berlin"])
        assert cosines(np.asarray(resp["vectors"]), expected).min() >= 0.9999
        assert cosines(np.asarray([before]), expected).min() < 0.99
    finally:
        shutil.rmtree(target, ignore_errors=True)


# -- ingest processor ---------------------------------------------------------------------------


def test_processor_embeds_like_the_python_encoder(es, engine_model, engine_index, encoder, sentences):
    docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences[::20]]
    docs.append({"id": "long", "lang": "en", "text": long_text(MULTILINGUAL)})
    docs += [{"id": f"m{i}", "lang": "xx", "text": t} for i, t in enumerate(MULTILINGUAL)]
    pipeline = put_pipeline(es, "embed", engine_model, input_type="passage")
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
    pipeline = put_pipeline(es, "bad", engine_model)
    (item,) = bulk_with(es, engine_index, pipeline, [doc])
    assert reason in item["error"]["reason"], item
    assert engine_model in item["error"]["reason"], item
    assert es.cluster.health()["status"] != "red"


def test_processor_ignore_missing_and_on_failure(es, engine_model, engine_index):
    pipeline = put_pipeline(es, "skip", engine_model, ignore_missing=True)
    (item,) = bulk_with(es, engine_index, pipeline, [{"id": "skip", "title": "no text"}])
    assert "error" not in item
    assert "embedding" not in sources(es, engine_index)["skip"]
    # on_failure: a document whose text is not a string is embedded from its title instead
    fallback = f"xlir-test-{uuid.uuid4().hex[:8]}"
    es.ingest.put_pipeline(
        id=fallback,
        processors=[
            {
                "xlir_embed": {
                    "model": engine_model,
                    "field_map": {"text": "embedding"},
                    "on_failure": [
                        {"xlir_embed": {"model": engine_model, "field_map": {"title": "embedding"}}}
                    ],
                }
            }
        ],
    )
    (item,) = bulk_with(es, engine_index, fallback, [{"id": "fb", "text": 7, "title": "Berlin"}])
    assert "error" not in item, item
    assert len(sources(es, engine_index)["fb"]["embedding"]) == 48


def test_processor_unknown_model_is_a_per_document_error(es, engine_index):
    pipeline = put_pipeline(es, "unknown", "no-such-model")
    items = bulk_with(es, engine_index, pipeline, [{"text": "a"}, {"text": "b"}])
    for item in items:
        assert "xlir model [no-such-model] is not installed" in item["error"]["reason"], item
    assert es.cluster.health()["status"] != "red"


def test_processor_refuses_an_index_of_another_model(es, engine_model, engine_index, tmp_path):
    other = tmp_path / "other"
    onnx_fixtures.build_onnx_model(other, ["x"], dim=48, seed=5, source_model="synthetic/other")
    other_index = f"{engine_index}-stamp"
    create_index(es, other_index, Manifest.load(other))
    try:
        pipeline = put_pipeline(es, "stamp", engine_model)
        (item,) = bulk_with(es, other_index, pipeline, [{"text": "Berlin"}])
        reason = item["error"]["reason"]
        assert "synthetic/other@none" in reason and "synthetic/unigram@none" in reason, reason
    finally:
        es.options(ignore_status=404).indices.delete(index=other_index)


@pytest.mark.parametrize("damage", ["flip_byte", "drop_tokenizer", "bad_manifest"])
def test_processor_corrupt_model_names_model_and_file(es, synthetic_export, engine_index, damage):
    name = f"xlir-test-broken-{uuid.uuid4().hex[:8]}"
    target = install_model(es, synthetic_export, name)
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
        pipeline = put_pipeline(es, "broken", name)
        (item,) = bulk_with(es, engine_index, pipeline, [{"text": "Berlin"}])
        assert f"xlir model [{name}]" in item["error"]["reason"], item
        assert es.cluster.health()["status"] != "red"
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_processor_eight_concurrent_bulks_lose_nothing(es, engine_model, engine_index, sentences):
    pipeline = put_pipeline(es, "concurrent", engine_model)
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
            errors.extend(item["index"]["error"] for item in resp["items"] if "error" in item["index"])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
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


@pytest.fixture
def searchable_index(es, engine_model, engine_index, sentences) -> str:
    docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences[::3]]
    pipeline = put_pipeline(es, "search", engine_model)
    items = bulk_with(es, engine_index, pipeline, docs)
    assert [i for i in items if "error" in i] == []
    return engine_index


QUESTION = "Wer hat die Relativitätstheorie entwickelt?"


def _ids(resp) -> list[str]:
    return [h["_id"] for h in resp["hits"]["hits"]]


def test_engine_knn_section_with_query_vector_builder(es, engine_model, searchable_index, encoder):
    vector = encoder.encode_queries([QUESTION])[0].tolist()
    lang_filter = {"term": {"lang": "de"}}
    by_text = es.search(
        index=searchable_index,
        knn={
            "field": "embedding",
            "k": 10,
            "num_candidates": 100,
            "query_vector_builder": {"xlir": {"model": engine_model, "text": QUESTION}},
            "filter": lang_filter,
        },
        source=["lang"],
    )
    by_vector = es.search(
        index=searchable_index,
        knn={"field": "embedding", "k": 10, "num_candidates": 100, "query_vector": vector, "filter": lang_filter},
        source=["lang"],
    )
    assert _ids(by_text) == _ids(by_vector) and len(_ids(by_text)) == 10
    assert {h["_source"]["lang"] for h in by_text["hits"]["hits"]} == {"de"}


def test_engine_knn_query_with_query_vector_builder(es, engine_model, searchable_index, encoder):
    vector = encoder.encode_queries([QUESTION])[0].tolist()
    lang_filter = {"terms": {"lang": ["en", "es"]}}
    knn = {"field": "embedding", "k": 10, "num_candidates": 100, "filter": lang_filter}
    by_text = es.search(
        index=searchable_index,
        query={
            "knn": {**knn, "query_vector_builder": {"xlir": {"model": engine_model, "text": QUESTION}}}
        },
        size=10,
        source=["lang"],
    )
    by_vector = es.search(
        index=searchable_index, query={"knn": {**knn, "query_vector": vector}}, size=10, source=["lang"]
    )
    assert _ids(by_text) == _ids(by_vector) and len(_ids(by_text)) == 10
    assert {h["_source"]["lang"] for h in by_text["hits"]["hits"]} <= {"en", "es"}


def test_engine_query_vector_builder_unknown_model_is_an_error(es, searchable_index):
    with pytest.raises(ApiError) as info:
        es.search(
            index=searchable_index,
            knn={
                "field": "embedding",
                "k": 1,
                "num_candidates": 10,
                "query_vector_builder": {"xlir": {"model": "no-such-model", "text": "x"}},
            },
        )
    assert "[no-such-model] is not installed" in str(info.value.body), info.value.body
