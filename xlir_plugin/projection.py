"""An alignment head: one linear map applied to the frozen encoder's pooled vector.

The bundled default is multilingual-e5-small plus this head (`DEFAULT_PROJECTION`, 0.6 MB):
`python -m trainer.projection` fits it with hybrid batches (X-X / X-Y) on the vectors the
untouched model gives the training sets, so it is the project's method applied to the one
part of the model that 2 CPU cores can train, and the repository ships 590 KB instead of a
470 MB model. The export writes it into the graph after pooling and before normalization
(`export.graph.add_pooling_head`), so Python and the Elasticsearch plugin serve it alike.

File format (`.npz`): ``weight`` (dim, dim_out) and ``bias`` (dim_out,) in float32, and
``meta``: a JSON string with the provenance (base model, data, steps, seed, training commit,
validation and evaluation figures) that `xlir model info` shows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import XlirError

DEFAULT_PROJECTION = Path(__file__).with_name("default_projection.npz")
# what an export directory carries about its head (provenance; sha256 of the weights)
PROJECTION_INFO_FILE = "xlir_projection.json"


@dataclass
class Projection:
    weight: np.ndarray  # (dim, dim_out)
    bias: np.ndarray  # (dim_out,)
    meta: dict = field(default_factory=dict)

    @classmethod
    def identity(cls, dim: int) -> Projection:
        """The head that changes nothing: where training starts, and the baseline it beats."""
        return cls(np.eye(dim, dtype=np.float32), np.zeros(dim, np.float32))

    @property
    def sha256(self) -> str:
        """Names these weights: an export made with other weights is rebuilt."""
        h = hashlib.sha256(np.ascontiguousarray(self.weight, "<f4").tobytes())
        h.update(np.ascontiguousarray(self.bias, "<f4").tobytes())
        return h.hexdigest()

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        """What the graph computes from pooled vectors: normalize(v @ W + b)."""
        out = np.asarray(vectors, np.float32) @ self.weight + self.bias
        return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            weight=self.weight.astype(np.float32),
            bias=self.bias.astype(np.float32),
            meta=np.array(json.dumps(self.meta, sort_keys=True)),
        )
        return path

    def info(self) -> dict:
        """The export directory's `xlir_projection.json`."""
        return {"sha256": self.sha256, "shape": list(self.weight.shape), **self.meta}


def load_projection(path: str | Path) -> Projection:
    path = Path(path)
    if not path.is_file():
        raise XlirError(f"no projection head at {path}")
    with np.load(path) as data:
        missing = {"weight", "bias", "meta"} - set(data.files)
        if missing:
            raise XlirError(f"{path} is not a projection head: no {sorted(missing)}")
        weight = data["weight"].astype(np.float32)
        bias = data["bias"].astype(np.float32)
        meta = json.loads(str(data["meta"]))
    if weight.ndim != 2 or bias.shape != (weight.shape[1],):
        raise XlirError(f"{path}: weight {weight.shape} and bias {bias.shape} do not fit")
    return Projection(weight, bias, meta)


def default_projection() -> Projection | None:
    """The shipped head of the default model (None in a checkout that has none)."""
    return load_projection(DEFAULT_PROJECTION) if DEFAULT_PROJECTION.is_file() else None
