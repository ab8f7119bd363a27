"""Fixtures and helpers of the in-engine tests (`pytest -k "engine or es_plugin or processor"`).

The session's node has the plugin (plugins/elasticsearch/, built by scripts/setup.sh, installed by the
node start). The tests install their own synthetic model (a Unigram tokenizer trained on
XQuAD-R sentences, an ONNX embedding-bag graph with pooling and normalisation inside) under
test-only names with `engine_install.install_model`, into the running node only.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from elasticsearch import ApiError

from tests import onnx_fixtures
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.engine_install import install_model, remove_model
from xlir_plugin.index import create_index
from xlir_plugin.manifest import Manifest

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
DIM = 48


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


def wait_until_served(probe: Callable[[], object], name: str, errors: type[Exception]) -> None:
    """Until `probe()` stops raising `errors` (the plugin picks a new model up within 2 s)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            probe()
            return
        except errors:
            assert time.monotonic() < deadline, f"the plugin did not pick up {name}"
            time.sleep(0.5)


def cosines(a, b) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def sources(es, index: str, size: int = 10_000) -> dict[str, dict]:
    """`_source` of every document by id, vectors included (Elasticsearch 9 leaves them out)."""
    hits = es.search(
        index=index, size=size, query={"match_all": {}}, source={"exclude_vectors": False}
    )["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def long_text(texts: list[str], chars: int = 10_000) -> str:
    out = " ".join(texts * (1 + chars // max(1, sum(map(len, texts)))))
    return out[:chars]


def put_pipeline(es, model: str, **options) -> str:
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


def unigram_tokenizer(texts: list[str]):
    """A SentencePiece-like Unigram tokenizer trained on `texts` (NFKC, Metaspace)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = list(onnx_fixtures.SPECIALS)
    trainer = trainers.UnigramTrainer(vocab_size=3000, special_tokens=specials, unk_token="<unk>")
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return tok


def build_other_model(path: Path, seed: int, source_model: str) -> Path:
    onnx_fixtures.build_onnx_model(path, ["x", "y"], dim=DIM, seed=seed, source_model=source_model)
    return path


@pytest.fixture(scope="module")
def sentences(xquad_dir) -> list[dict]:
    langs = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "zh")
    return onnx_fixtures.xquad_sentences(xquad_dir.parent, langs=langs, per_lang=120)


@pytest.fixture(scope="module")
def synthetic_export(tmp_path_factory, sentences) -> Path:
    """An exported model whose tokenizer is a real Unigram (SentencePiece-like) one."""
    path = tmp_path_factory.mktemp("engine-model")
    tok = unigram_tokenizer([s["text"] for s in sentences])
    onnx_fixtures.build_onnx_model(
        path, [], dim=DIM, max_length=128, seed=3, source_model="synthetic/unigram", tokenizer=tok
    )
    return path


@pytest.fixture(scope="module")
def engine_model(es_settings, synthetic_export) -> str:
    """The synthetic model installed on the running node under a test-only name."""
    name = f"xlir-test-{uuid.uuid4().hex[:8]}"
    install_model(synthetic_export, name, es_settings, future_nodes=False)
    yield name
    remove_model(name, es_settings, future_nodes=False)


@pytest.fixture(scope="module")
def encoder(synthetic_export) -> OnnxEncoder:
    return OnnxEncoder(synthetic_export, threads=2)


@pytest.fixture
def engine_index(es, synthetic_export, index_name) -> str:
    """An index stamped for the synthetic model, as `xlir index` creates it."""
    create_index(es, index_name, Manifest.load(synthetic_export))
    return index_name
