"""The lean Unigram tokenizer gives exactly the ids (and windows) of `tokenizers`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from tests.conftest import REPO_ROOT
from tests.onnx_fixtures import build_onnx_model
from xlir_plugin.encoder import OnnxEncoder, load_tokenizer
from xlir_plugin.lean_tokenizer import LeanUnigram, load_lean, serde_f64

ALPHABET = "abcdeé日本 ▁"
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def synthetic_unigram(seed: int = 0) -> Tokenizer:
    """A Unigram tokenizer set up like XLM-R's, over a small random vocabulary whose scores
    tie often (ties decide which segmentation wins, so the order of candidates matters)."""
    rng = np.random.default_rng(seed)
    pieces = {"".join(rng.choice(list("abcdeé日本▁"), size=n)) for n in rng.integers(1, 5, 300)}
    vocab = [(s, 0.0) for s in SPECIALS]
    vocab += [(p, float(rng.choice([-1.0, -2.0, -2.5, -3.0]))) for p in sorted(pieces)]
    vocab.append(("<mask>", 0.0))
    tok = Tokenizer(Unigram(vocab, unk_id=3, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    tok.add_special_tokens([*SPECIALS, AddedToken("<mask>", lstrip=True, special=True)])
    return tok


def random_texts(n: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    extras = ["<s>", "</s>", "<mask>", " <mask>", "<unk>", "x", "\u200b", "  ", "ﬁ", "\t"]
    texts = []
    for _ in range(n):
        parts = rng.choice(list(ALPHABET) + extras, size=rng.integers(1, 40))
        texts.append("".join(parts))
    return texts


def same_output(lean, reference, texts) -> list[str]:
    """Texts whose ids or overflowing windows differ between the two tokenizers."""
    return [
        t
        for t, a, b in zip(
            texts, lean.encode_batch(texts), reference.encode_batch(texts), strict=True
        )
        if a.ids != b.ids or [o.ids for o in a.overflowing] != [o.ids for o in b.overflowing]
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ids_and_windows_equal_tokenizers(tmp_path, seed):
    path = tmp_path / "tokenizer.json"
    synthetic_unigram(seed).save(str(path))
    lean, reference = load_lean(path), Tokenizer.from_file(str(path))
    assert isinstance(lean, LeanUnigram)
    for max_length, stride in [(512, 0), (12, 0), (9, 3)]:  # short: many windows
        for tok in (lean, reference):
            tok.no_padding()
            tok.enable_truncation(max_length, stride=stride)
        texts = random_texts(1500, seed)
        assert same_output(lean, reference, texts) == []
    assert lean.token_to_id("<pad>") == reference.token_to_id("<pad>") == 1
    assert lean.token_to_id("<mask>") == reference.token_to_id("<mask>")


def test_scores_are_read_as_tokenizers_reads_them(tmp_path):
    """serde_json (as tokenizers builds it) is 1 ulp off a correct parse for some decimals."""
    spec = json.loads(synthetic_unigram().to_str())
    awkward = ["-7.4715776443481445", "-7.720690250396728", "-1.5e-3", "-2", "-0.0", "-20.364751"]
    for i in range(len(awkward)):
        spec["model"]["vocab"][10 + i][1] = -9990.25 - i  # placeholders, written exactly
    raw = json.dumps(spec, indent=2)
    for i, text in enumerate(awkward):
        raw = raw.replace(str(-9990.25 - i), text, 1)
    path = tmp_path / "tokenizer.json"
    path.write_text(raw, encoding="utf-8")
    rust = json.loads(Tokenizer.from_file(str(path)).to_str())["model"]["vocab"]
    lean = load_lean(path)
    assert list(lean._scores) == [score for _, score in rust]
    assert serde_f64(b"-7.4715776443481445") == -7.471577644348144  # float() gives ...1445
    assert serde_f64(b"123456789012345678901234.5") == 1.2345678901234567e23


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["model"].update(byte_fallback=True),
        lambda s: s["pre_tokenizer"].update(prepend_scheme="first"),
        lambda s: s["added_tokens"][0].update(normalized=True),
        lambda s: s.update(post_processor=json.loads(processors.ByteLevel().__getstate__())),
    ],
)
def test_what_it_cannot_reproduce_is_left_to_tokenizers(tmp_path, change):
    spec = json.loads(synthetic_unigram().to_str())
    change(spec)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    assert load_lean(path) is None
    assert isinstance(load_tokenizer(path, 16, 0), Tokenizer)


def test_encoder_uses_it_for_a_unigram_model(tmp_path):
    """A word-level model keeps `tokenizers`; a Unigram one gets the lean tokenizer and the
    vectors the model computes over `tokenizers`' ids."""
    word = tmp_path / "word"
    build_onnx_model(word, ["paris", "berlin"], dim=8)
    assert isinstance(OnnxEncoder(word).tokenizer, Tokenizer)
    uni = tmp_path / "uni"
    tok = synthetic_unigram()
    emb = build_onnx_model(uni, [], dim=8, tokenizer=tok, max_length=16)
    enc = OnnxEncoder(uni, threads=1)
    assert isinstance(enc.tokenizer, LeanUnigram)
    texts = random_texts(40, seed=3)
    ref = Tokenizer.from_file(str(uni / "tokenizer.json"))
    ref.enable_truncation(16)
    want = []
    for text in texts:
        v = emb[ref.encode("passage: " + text).ids].mean(axis=0)
        want.append(v / np.linalg.norm(v))
    np.testing.assert_allclose(enc.encode_passages(texts), np.array(want), atol=1e-5)
    assert enc.pad_id == 1


# -- the real XLM-R tokenizer of the default model ---------------------------------------------


@pytest.fixture(scope="module")
def xlmr_tokenizer_json():
    from xlir_plugin.default_model import materialize_default

    return materialize_default() / "tokenizer.json"


@pytest.mark.slow
def test_xquad_r_pool_and_questions_tokenize_the_same(xlmr_tokenizer_json, xquad_dir):
    texts = []
    for path in sorted(xquad_dir.glob("*.json")):
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for para in article["paragraphs"]:
                texts += ["passage: " + s for s in para["sentences"] if s.strip()]
                texts += ["query: " + qa["question"] for qa in para["qas"][:2]]
    texts += random_texts(300) + ["<s>x<mask>y</s>", "  <mask>", "𝔘𝔫𝔦 ꙮ", "word " * 700]
    lean, reference = load_lean(xlmr_tokenizer_json), Tokenizer.from_file(str(xlmr_tokenizer_json))
    for tok in (lean, reference):
        tok.no_padding()
        tok.enable_truncation(512, stride=64)
    assert len(texts) > 15_000
    assert same_output(lean, reference, texts) == []


@pytest.mark.slow
def test_it_holds_a_fraction_of_the_memory(xlmr_tokenizer_json):
    """Resident memory added by loading each, in a fresh process (measured: ~40 vs ~280 MB)."""
    probe = """
import sys
def rss():
    return int([l for l in open("/proc/self/status") if l.startswith("VmRSS:")][0].split()[1])
import tokenizers
from xlir_plugin.lean_tokenizer import load_lean
before = rss()
kind, path = sys.argv[1:3]
tok = load_lean(path) if kind == "lean" else tokenizers.Tokenizer.from_file(path)
print((rss() - before) // 1024)
"""
    added = {}
    for kind in ("lean", "tokenizers"):
        out = subprocess.run(
            [sys.executable, "-c", probe, kind, str(xlmr_tokenizer_json)],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=True,
        )
        added[kind] = int(out.stdout.split()[-1])
    assert added["lean"] < 80 and added["lean"] * 3 < added["tokenizers"], added
