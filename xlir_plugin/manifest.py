"""The two small JSON files that carry an encoder's settings between the three stages.

`xlir_encoder.json` sits in a `transformers` model directory (written by the trainer and by
the default-model builder) and says how to turn token states into a sentence vector.
`xlir.json` sits in an exported ONNX directory (written by `python -m export.onnx`) and is
what the serving encoder trusts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

ENCODER_SETTINGS_FILE = "xlir_encoder.json"
MANIFEST_FILE = "xlir.json"


@dataclass
class EncoderSettings:
    """How a transformer's token states become a sentence embedding (E5 defaults)."""

    pooling: str = "mean"  # "mean" or "cls"
    normalize: bool = True
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    max_length: int = 512

    def save(self, model_dir: str | Path) -> Path:
        path = Path(model_dir) / ENCODER_SETTINGS_FILE
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, model_dir: str | Path) -> EncoderSettings:
        """Settings of a model directory; E5 defaults when the file is absent (e.g. a hub model)."""
        path = Path(model_dir) / ENCODER_SETTINGS_FILE
        if not path.is_file():
            return cls()
        return _from_dict(cls, json.loads(path.read_text()))


@dataclass
class Manifest:
    """What the serving encoder needs to know about an exported ONNX model."""

    source_model: str
    dim: int
    sha256: str
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    quantization: str = "none"  # none | int8 | fp16
    output: str = "sentence_embedding"  # name of the ONNX output holding the vectors
    pooling_in_graph: bool = True
    opset: int | None = None
    onnxruntime_version: str | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    file_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return f"{self.source_model}@{self.quantization}"

    def save(self, onnx_dir: str | Path) -> Path:
        path = Path(onnx_dir) / MANIFEST_FILE
        path.write_text(json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n")
        return path

    @classmethod
    def load(cls, onnx_dir: str | Path) -> Manifest:
        data = json.loads((Path(onnx_dir) / MANIFEST_FILE).read_text())
        data["encoder"] = _from_dict(EncoderSettings, data.get("encoder", {}))
        return _from_dict(cls, data)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Build a dataclass from JSON, ignoring keys written by newer versions."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
