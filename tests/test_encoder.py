"""The ONNX serving encoder, on a synthetic exported model (no torch)."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

from tests.onnx_fixtures import build_onnx_model, build_tokenizer, reference_vectors
from xlir_plugin.encoder import OnnxEncoder, session_options
from xlir_plugin.errors import InputError, ModelMismatch, XlirError
from xlir_plugin.manifest import Manifest

WORDS = " ".join(
    [
        "query passage : the capital of germany is berlin france paris river city",
        "die hauptstadt von deutschland ist la capital de españa es madrid who what where when",
    ]
).split(" ")
TEXTS = [
    "the capital of germany is berlin",
    "die hauptstadt von deutschland ist berlin",
    "la capital de españa es madrid",
    "paris",
    "what river where city when who",
    "unknown words only zzz",
]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx-pooled")
    emb = build_onnx_model(path, WORDS, dim=16, max_length=8)
    return path, emb


@pytest.fixture(scope="module")
def raw_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx-states")
    emb = build_onnx_model(path, WORDS, dim=16, max_length=8, pooling_in_graph=False)
    return path, emb


def test_shapes_normalized_and_equal_to_numpy(model):
    path, emb = model
    enc = OnnxEncoder(path, threads=1)
    assert enc.dim == 16 and enc.threads == 1
    vecs = enc.encode_passages(TEXTS)
    assert vecs.shape == (len(TEXTS), 16) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    tok = build_tokenizer(WORDS)
    ref = reference_vectors(tok, emb, ["passage: " + t for t in TEXTS], max_length=8)
    np.testing.assert_allclose(vecs, ref, atol=1e-5)


def test_prefixes_from_manifest(model):
    path, emb = model
    enc = OnnxEncoder(path)
    q, p, raw = (
        enc.encode_queries(["paris"]),
        enc.encode_passages(["paris"]),
        enc.encode(["paris"], "raw"),
    )
    tok = build_tokenizer(WORDS)
    np.testing.assert_allclose(q, reference_vectors(tok, emb, ["query: paris"], 8), atol=1e-5)
    np.testing.assert_allclose(p, reference_vectors(tok, emb, ["passage: paris"], 8), atol=1e-5)
    np.testing.assert_allclose(raw, reference_vectors(tok, emb, ["paris"], 8), atol=1e-5)
    with pytest.raises(InputError, match="kind"):
        enc.encode(["paris"], "document")


def test_batching_and_order_do_not_change_vectors(model):
    path, _ = model
    one = OnnxEncoder(path, batch_size=1).encode_passages(TEXTS)
    many = OnnxEncoder(path, batch_size=4).encode_passages(TEXTS)
    np.testing.assert_allclose(one, many, atol=1e-6)
    rev = OnnxEncoder(path, batch_size=4).encode_passages(TEXTS[::-1])
    np.testing.assert_allclose(rev[::-1], many, atol=1e-6)


def test_batches_hold_at_most_max_batch_tokens(model):
    """Longest first; rows x longest <= max_batch_tokens (a longer text alone); same vectors."""
    path, _ = model
    enc = OnnxEncoder(path, batch_size=4, max_batch_tokens=12)
    lengths = np.array([3, 8, 2, 5, 13, 4, 2])
    batches = enc._batches(lengths)
    assert [lengths[b].tolist() for b in batches] == [[13], [8], [5, 4], [3, 2, 2]]
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    np.testing.assert_allclose(
        enc.encode_passages(TEXTS), OnnxEncoder(path).encode_passages(TEXTS), atol=1e-6
    )
    with pytest.raises(InputError, match="max_batch_tokens"):
        OnnxEncoder(path, max_batch_tokens=0)


def test_one_text_skips_the_batch_tokenizer(model, monkeypatch):
    """A query is tokenized alone (tokenizers' thread pool is not woken for it): same ids."""
    path, emb = model
    enc = OnnxEncoder(path)
    batched = enc.encode_queries(["paris", "the capital of germany is berlin"])

    def refuse(texts):
        raise AssertionError("encode_batch called for one text")

    monkeypatch.setattr(enc, "tokenizer", _NoBatch(enc.tokenizer, refuse))
    np.testing.assert_allclose(enc.encode_queries(["paris"]), batched[:1], atol=1e-6)
    tok = build_tokenizer(WORDS)
    ref = reference_vectors(tok, emb, ["query: paris"], 8)
    np.testing.assert_allclose(enc.encode_queries(["paris"]), ref, atol=1e-5)


class _NoBatch:
    def __init__(self, tokenizer, encode_batch):
        self.encode, self.encode_batch = tokenizer.encode, encode_batch


def test_session_options_do_not_spin():
    """Idle onnxruntime threads sleep instead of spinning on cores Elasticsearch needs."""
    options = session_options(2)
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_pooling_in_numpy_matches_pooling_in_graph(model, raw_model, tmp_path):
    (path, emb), (raw_path, raw_emb) = model, raw_model
    np.testing.assert_array_equal(emb, raw_emb)
    pooled = OnnxEncoder(path).encode_passages(TEXTS)
    enc = OnnxEncoder(raw_path)
    assert "token_type_ids" in enc._input_names
    np.testing.assert_allclose(enc.encode_passages(TEXTS), pooled, atol=1e-5)
    # CLS pooling takes the first token's state
    manifest = Manifest.load(raw_path)
    manifest.encoder.pooling = "cls"
    manifest.save(raw_path)
    try:
        cls = OnnxEncoder(raw_path).encode(["paris"], "raw")
        np.testing.assert_allclose(cls[0], emb[0] / np.linalg.norm(emb[0]), atol=1e-6)
    finally:
        manifest.encoder.pooling = "mean"
        manifest.save(raw_path)


def test_empty_list(model):
    assert OnnxEncoder(model[0]).encode_queries([]).shape == (0, 16)


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["ok", 3], "index 1 is int"),
        (["ok", "fine", ""], "index 2 is empty"),
        (["  \n"], "index 0 is empty"),
        ([None], "index 0 is NoneType"),
        ("a single string", "single string"),
        (5, "got int"),
    ],
)
def test_bad_input_names_the_index(model, texts, message):
    with pytest.raises(InputError, match=message):
        OnnxEncoder(model[0]).encode_passages(texts)


LONG = "the capital of germany is berlin france paris river city where when"  # 13 words


def test_truncation_is_counted_and_logged(model, caplog):
    enc = OnnxEncoder(model[0])
    with caplog.at_level(logging.WARNING, logger="xlir_plugin.encoder"):
        vecs = enc.encode(["paris", LONG, LONG + " who"], "raw")
    assert enc.last_truncated == 2
    records = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(records) == 1 and "2 of 3" in records[0].getMessage()
    tok = build_tokenizer(WORDS)
    np.testing.assert_allclose(vecs[1], reference_vectors(tok, model[1], [LONG], 8)[0], atol=1e-5)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="xlir_plugin.encoder"):
        enc.encode(["paris"], "raw")
    assert enc.last_truncated == 0 and not caplog.records


def test_window_mode_averages_windows(model):
    path, emb = model
    enc = OnnxEncoder(path, long_text="window", window_stride=2)
    vec = enc.encode([LONG], "raw")[0]
    tok = build_tokenizer(WORDS)
    ids = tok.encode(LONG).ids[1:-1]  # 13 content tokens, windows of 6 with overlap 2
    windows = [ids[0:6], ids[4:10], ids[8:13]]
    parts = [emb[[0, *w, 2]].mean(axis=0) for w in windows]
    parts = [p / np.linalg.norm(p) for p in parts]
    expected = np.mean(parts, axis=0)
    np.testing.assert_allclose(vec, expected / np.linalg.norm(expected), atol=1e-5)
    assert enc.last_truncated == 0
    # short texts are unaffected by window mode
    np.testing.assert_allclose(
        enc.encode(["paris"], "raw"), OnnxEncoder(path).encode(["paris"], "raw"), atol=1e-6
    )


def test_error_mode_refuses_long_texts(model):
    enc = OnnxEncoder(model[0], long_text="error")
    with pytest.raises(InputError, match=r"1 text\(s\) longer.*indexes 1"):
        enc.encode(["paris", LONG], "raw")
    with pytest.raises(InputError, match="long_text"):
        OnnxEncoder(model[0], long_text="cut")


def test_sha256_is_verified(model, tmp_path):
    path = tmp_path / "m"
    build_onnx_model(path, WORDS, dim=16)
    manifest = Manifest.load(path)
    manifest.sha256 = "0" * 64
    manifest.save(path)
    with pytest.raises(ModelMismatch, match="model.onnx.*sha256"):
        OnnxEncoder(path)
    OnnxEncoder(path, verify=False)  # explicit opt-out still loads


def test_missing_files_are_named(tmp_path):
    with pytest.raises(XlirError, match="model.onnx is missing"):
        OnnxEncoder(tmp_path)


def test_serving_path_imports_without_torch():
    code = (
        "import sys\n"
        "import xlir_plugin.encoder, xlir_plugin.index, xlir_plugin.ingest, xlir_plugin.search\n"
        "heavy = [m for m in ('torch', 'transformers', 'optimum', 'datasets') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
