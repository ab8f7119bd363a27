"""A text's vector does not depend on the texts batched with it (the default int8 export).

int8 activations are quantized with scales fixed at export (`export.quantize`), so neither a
batch-mate's range nor padding reaches a text's vector. Checked on the real default model
with multilingual texts from 1 to 512 tokens: alone, in one batch of all of them, and in
that batch reversed.
"""

from __future__ import annotations

import numpy as np
import pytest

from xlir_plugin.encoder import OnnxEncoder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_int8() -> OnnxEncoder:
    from export import ensure_exported

    return OnnxEncoder(ensure_exported("default", "int8"), threads=2)


def _texts(xquad_dir) -> list[str]:
    """Texts of very different lengths in 11 languages: single characters, questions,
    sentences, paragraphs, and one text past 512 tokens (truncated: 512 tokens served)."""
    import json

    texts = ["a", "東京", "ok?", "สวัสดี", "Ω"]
    for lang in ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"):
        data = json.loads((xquad_dir / f"{lang}.json").read_text(encoding="utf-8"))
        paragraph = data["data"][0]["paragraphs"][0]
        texts.append(paragraph["qas"][0]["question"])
        texts.append(paragraph["context"])
        texts.append(paragraph["context"].split(".")[0])
    texts.append(" ".join(texts[5:]) * 2)
    return texts


def test_a_vector_is_the_same_alone_and_in_any_batch(default_int8, xquad_dir):
    texts = _texts(xquad_dir)
    lengths = [len(e.ids) for e in default_int8.tokenizer.encode_batch(texts)]
    assert min(lengths) <= 3 and max(lengths) >= 512  # 1 token + specials .. truncated
    for kind in ("query", "passage"):
        alone = np.stack([default_int8.encode([t], kind, warn=False)[0] for t in texts])
        limits = default_int8.batch_size, default_int8.max_batch_tokens
        default_int8.batch_size, default_int8.max_batch_tokens = 256, 256 * 512  # one run
        try:
            batched = default_int8.encode(texts, kind, warn=False)
            reversed_ = default_int8.encode(texts[::-1], kind, warn=False)[::-1]
        finally:
            default_int8.batch_size, default_int8.max_batch_tokens = limits
        for other in (batched, reversed_):
            cosine = (alone * other).sum(1)
            assert cosine.min() >= 0.99999, cosine.min()
            assert np.abs(alone - other).max() < 1e-5
