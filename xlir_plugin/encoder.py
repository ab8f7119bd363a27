"""The serving encoder: an exported ONNX model plus its tokenizer, run with onnxruntime only.

`OnnxEncoder(model_dir)` loads what `python -m export.onnx` wrote (`model.onnx`,
`tokenizer.json`, `xlir.json`), checks the model file against the manifest's sha256 and turns
texts into float32 vectors: prefixes from the manifest, length-sorted batches with per-batch
padding, pooling and L2 normalisation in numpy when the graph does not already do them.

Memory: a SentencePiece-Unigram tokenizer.json is read by `lean_tokenizer` (the same ids in
~40 MB instead of ~290 MB), and a batch holds at most `max_batch_tokens` tokens (padding
included), so the activations of one run stay small whatever the text lengths. An int8 model
quantises its activations per batch, so a passage's vector can differ in the last bits with
the texts it is batched with; a single query is its own batch and its vector never varies.

Texts longer than the model's max length are never cut silently: by default they are
truncated and each call logs how many were; `long_text="window"` embeds overlapping windows
and averages them; `long_text="error"` refuses them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .errors import InputError, ModelMismatch, XlirError
from .lean_tokenizer import LeanUnigram, load_lean
from .manifest import MANIFEST_FILE, Manifest, sha256_file

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
LONG_TEXT_MODES = ("truncate", "window", "error")
#: tokens (padding included) per ONNX run: bounds the activations (32 XQuAD-R sentences in one
#: run took ~150 MB) at no cost in throughput (CPU per passage was the same from 512 to 2048)
MAX_BATCH_TOKENS = 1024

Kind = Literal["query", "passage", "raw"]


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity / container cpusets)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class OnnxEncoder:
    """Sentence encoder over an exported ONNX model directory.

    threads: onnxruntime intra-op threads (default: the cores available to this process).
    batch_size: texts per ONNX run; texts are sorted by token length first so each batch is
        padded only to its own longest text.
    max_batch_tokens: at most this many tokens per run (batch rows x its longest text), so
        long texts go in smaller batches (at least one text per run).
    long_text: "truncate" (default, counted and logged once per call), "window" (split into
        overlapping windows of max_length tokens, embed each, average, renormalise) or "error".
    window_stride: tokens shared by consecutive windows (default max_length // 8).
    verify: check the sha256 of model.onnx against the manifest (on by default).
    Threads may share one encoder: the onnxruntime session and the tokenizer are read-only
    after loading, and `last_truncated` is kept per thread.
    """

    def __init__(
        self,
        model_dir: str | Path,
        threads: int | None = None,
        batch_size: int = 32,
        long_text: str = "truncate",
        *,
        window_stride: int | None = None,
        verify: bool = True,
        providers: Sequence[str] | None = None,
        max_batch_tokens: int = MAX_BATCH_TOKENS,
    ) -> None:
        import onnxruntime as ort

        self.model_dir = Path(model_dir)
        if long_text not in LONG_TEXT_MODES:
            raise InputError(f"long_text must be one of {LONG_TEXT_MODES}, got {long_text!r}")
        if batch_size < 1 or max_batch_tokens < 1:
            raise InputError(
                f"batch_size and max_batch_tokens must be >= 1, got {batch_size}, "
                f"{max_batch_tokens}"
            )
        for name in (MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE):
            if not (self.model_dir / name).is_file():
                raise XlirError(
                    f"{self.model_dir} is not an exported XLIR model: {name} is missing "
                    "(export one with `python -m export.onnx`)"
                )
        self.manifest = Manifest.load(self.model_dir)
        model_path = self.model_dir / MODEL_FILE
        if verify:
            actual = sha256_file(model_path)
            if actual != self.manifest.sha256:
                raise ModelMismatch(
                    f"{model_path} does not match its manifest {MANIFEST_FILE}: sha256 is "
                    f"{actual}, the manifest says {self.manifest.sha256} (re-export the model)"
                )

        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.long_text = long_text
        self.threads = threads or available_cores()
        self.max_length = int(self.manifest.encoder.max_length)
        if self.max_length < 3:
            raise XlirError(f"manifest max_length {self.max_length} is too small")
        stride = self.max_length // 8 if window_stride is None else window_stride
        if not 0 <= stride < self.max_length - 2:
            raise InputError(f"window_stride must be in [0, {self.max_length - 3}], got {stride}")
        self.window_stride = stride
        self._local = threading.local()  # per-thread state: the encoder is shared

        # the tokenizer first: what parsing it allocates is freed before the model is loaded
        self.tokenizer = load_tokenizer(
            self.model_dir / TOKENIZER_FILE,
            self.max_length,
            self.window_stride if long_text == "window" else 0,
        )
        self.pad_id = self._pad_id()
        self.session = ort.InferenceSession(
            str(model_path),
            session_options(self.threads),
            providers=list(providers or ["CPUExecutionProvider"]),
        )
        self._input_names = {i.name for i in self.session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise XlirError(f"{model_path} lacks the inputs {sorted(missing)}")
        outputs = [o.name for o in self.session.get_outputs()]
        if self.manifest.output not in outputs:
            raise XlirError(
                f"{model_path} has no output {self.manifest.output!r} (outputs: {outputs})"
            )
        self._outputs = [self.manifest.output]
        self._need_types = "token_type_ids" in self._input_names

    # -- public API -------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return int(self.manifest.dim)

    @property
    def model_name(self) -> str:
        return self.manifest.model_name

    @property
    def last_truncated(self) -> int:
        """Texts truncated by this thread's last `encode` call (safe when threads share us)."""
        return getattr(self._local, "truncated", 0)

    @last_truncated.setter
    def last_truncated(self, value: int) -> None:
        self._local.truncated = value

    def encode_queries(self, texts: Sequence[str], *, warn: bool = True) -> np.ndarray:
        """Embed search queries (manifest's query prefix); float32 (n, dim)."""
        return self.encode(texts, "query", warn=warn)

    def encode_passages(self, texts: Sequence[str], *, warn: bool = True) -> np.ndarray:
        """Embed passages/documents (manifest's passage prefix); float32 (n, dim)."""
        return self.encode(texts, "passage", warn=warn)

    def encode(
        self, texts: Sequence[str], kind: Kind = "passage", *, warn: bool = True
    ) -> np.ndarray:
        """Embed `texts` with the prefix for `kind` ("query", "passage" or "raw": none).

        Truncated texts are counted in `last_truncated` and, unless `warn=False` (callers
        that aggregate, like ingest), logged once per call.
        """
        self.last_truncated = 0
        encodings = self.tokenize(texts, kind)
        if not encodings:
            return np.zeros((0, self.dim), dtype=np.float32)
        long = [i for i, e in enumerate(encodings) if e.overflowing]
        if long and self.long_text == "error":
            shown = ", ".join(map(str, long[:10])) + (" ..." if len(long) > 10 else "")
            raise InputError(
                f"{len(long)} text(s) longer than max_length={self.max_length} tokens "
                f"(indexes {shown}); use long_text='truncate' or 'window'"
            )
        if not long or self.long_text == "truncate":
            if long:
                self.last_truncated = len(long)
            if long and warn:
                log.warning(
                    "%d of %d text(s) longer than %d tokens were truncated",
                    len(long),
                    len(texts),
                    self.max_length,
                )
            return self._embed_encodings(encodings)

        # window mode: every window of every text is a row, then rows are averaged per text
        pieces: list = []
        owner: list[int] = []
        for i, enc in enumerate(encodings):
            pieces.append(enc)
            owner.append(i)
            for extra in enc.overflowing:
                pieces.append(extra)
                owner.append(i)
        rows = self._embed_encodings(pieces)
        out = np.zeros((len(texts), rows.shape[1]), dtype=np.float32)
        np.add.at(out, np.asarray(owner), rows)
        counts = np.bincount(np.asarray(owner), minlength=len(texts)).astype(np.float32)
        out /= counts[:, None]
        if self.manifest.encoder.normalize:
            out = _l2_normalize(out)
        return out

    def tokenize(self, texts: Sequence[str], kind: Kind = "passage") -> list:
        """The encodings `encode` embeds (`kind`'s prefix, cut at max_length, the rest in
        `overflowing`): a server counts and batches tokens before `embed_tokenized`."""
        texts = _check_texts(texts)
        settings = self.manifest.encoder
        prefix = {"query": settings.query_prefix, "passage": settings.passage_prefix, "raw": ""}
        if kind not in prefix:
            raise InputError(f"kind must be 'query', 'passage' or 'raw', got {kind!r}")
        if prefix[kind]:
            texts = [prefix[kind] + t for t in texts]
        # one text (a query): no batch machinery (tokenizers' thread pool wakes for a batch)
        if len(texts) <= 1:
            return [self.tokenizer.encode(t) for t in texts]
        return self.tokenizer.encode_batch(texts)

    def embed_tokenized(self, encodings: list) -> np.ndarray:
        """Vectors of `tokenize`'s encodings, truncated (what `encode` gives with "truncate"),
        whatever encodings of other requests they are run with."""
        if not encodings:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._embed_encodings(encodings)

    def __repr__(self) -> str:
        return (
            f"OnnxEncoder({str(self.model_dir)!r}, model={self.model_name!r}, dim={self.dim}, "
            f"threads={self.threads}, batch_size={self.batch_size}, long_text={self.long_text!r})"
        )

    # -- internals --------------------------------------------------------------------------

    def _pad_id(self) -> int:
        padding = self.tokenizer.padding  # None after no_padding(); read the special tokens
        if padding:
            return int(padding["pad_id"])
        for token in ("<pad>", "[PAD]", "<|pad|>"):
            tid = self.tokenizer.token_to_id(token)
            if tid is not None:
                return int(tid)
        return 0

    def _embed_encodings(self, encodings: list) -> np.ndarray:
        """Run the model over tokenized texts, length-sorted, padded per batch, order restored."""
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        out = np.empty((len(encodings), self.dim), dtype=np.float32)
        for idx in self._batches(lengths):
            width = int(lengths[idx[0]])  # the longest: batches are sorted longest first
            ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, j in enumerate(idx):
                n = lengths[j]
                ids[row, :n] = encodings[j].ids
                mask[row, :n] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if self._need_types:
                feeds["token_type_ids"] = np.zeros_like(ids)
            (result,) = self.session.run(self._outputs, feeds)
            out[idx] = self._pool(np.asarray(result, dtype=np.float32), mask)
        return out

    def _batches(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Row indexes per run, longest texts first: at most `batch_size` rows and
        `max_batch_tokens` tokens each (a text longer than that runs alone)."""
        order = np.argsort(-lengths, kind="stable")
        batches, start = [], 0
        while start < len(order):
            rows = self.max_batch_tokens // int(lengths[order[start]])
            size = max(1, min(self.batch_size, rows))
            batches.append(order[start : start + size])
            start += size
        return batches

    def _pool(self, result: np.ndarray, mask: np.ndarray) -> np.ndarray:
        settings = self.manifest.encoder
        if result.ndim == 3:  # token states: pool here
            if settings.pooling == "cls":
                vectors = result[:, 0, :]
            elif settings.pooling == "mean":
                m = mask[:, :, None].astype(np.float32)
                vectors = (result * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            else:
                raise XlirError(f"unknown pooling {settings.pooling!r} in {MANIFEST_FILE}")
        elif result.ndim == 2:
            vectors = result
        else:
            raise XlirError(f"unexpected ONNX output shape {result.shape}")
        if vectors.shape[1] != self.dim:
            raise ModelMismatch(
                f"model output has {vectors.shape[1]} dims, {MANIFEST_FILE} says {self.dim}"
            )
        if settings.normalize:
            vectors = _l2_normalize(vectors)
        return vectors


def load_tokenizer(path: Path, max_length: int, stride: int) -> LeanUnigram | tokenizers.Tokenizer:
    """The lean Unigram tokenizer when it reproduces `path` exactly, else `tokenizers`';
    no padding (the encoder pads per batch), truncated at `max_length` with `stride`."""
    from tokenizers import Tokenizer

    tokenizer = load_lean(path) or Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length, stride=stride)
    return tokenizer


def session_options(threads: int) -> onnxruntime.SessionOptions:
    """onnxruntime options for serving on a few shared cores.

    No spinning: idle intra-op threads would busy-wait for work, taking the cores that
    Elasticsearch and the bulk sender need between two runs (a third more CPU per passage
    on 2 cores, and no faster). The memory arena stays: without it glibc's per-thread heaps
    kept more (peak RSS 270 MB against 240 MB).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _check_texts(texts: Sequence[str]) -> list[str]:
    """A list of non-empty strings, or InputError naming the first offending index."""
    if isinstance(texts, (str, bytes)):
        raise InputError("expected a list of texts, got a single string (wrap it in a list)")
    try:
        texts = list(texts)
    except TypeError:
        raise InputError(f"expected a list of texts, got {type(texts).__name__}") from None
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise InputError(f"text at index {i} is {type(t).__name__}, not a string")
        if not t.strip():
            raise InputError(f"text at index {i} is empty")
    return texts
