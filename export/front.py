"""What an export starts from (`Front`) and the steps every front shares."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export import graph
from export.errors import ExportInputError
from export.probe import Probe
from xlir_plugin.manifest import EncoderSettings
from xlir_plugin.projection import PROJECTION_INFO_FILE, Projection


@dataclass
class Front:
    """A fused fp32 graph (output `last_hidden_state`) and what the export needs with it."""

    name: str  # the manifest's `source_model`
    settings: EncoderSettings
    dim: int
    graph: Path
    write_files: Callable[[Path], None]  # tokenizer files + config.json into a directory
    reference: Callable[[Probe], tuple[np.ndarray, np.ndarray]]  # parity: the vectors to match
    reference_name: str  # what `reference` computes with ("torch", "onnx fp32")
    # int8: the calibration figures when the front knows them (the default model ships
    # them: `export.offline.ShippedCalibration`); None: calibrate on the training data
    calibration: object | None = None
    # an alignment head on the output vector (the default model's; `--projection`)
    projection: Projection | None = None


def write_graph(
    onnx_path: Path,
    out_dir: Path,
    settings: EncoderSettings,
    pooling_in_graph: bool = True,
    projection: Projection | None = None,
) -> tuple[str, int]:
    """`onnx_path` (+ the pooling head and a projection) as out_dir/model.onnx, and the
    projection's record (`xlir_projection.json`: sha256, provenance) beside it, removed when
    there is none; returns the output's name and the graph's opset."""
    proto = graph.onnx.load(str(onnx_path))
    output_name = graph.HIDDEN_OUTPUT
    if projection is not None and not pooling_in_graph:
        raise ExportInputError("a projection head needs the pooling in the graph")
    if pooling_in_graph:
        weights = None if projection is None else (projection.weight, projection.bias)
        proto = graph.add_pooling_head(
            proto, settings.pooling, settings.normalize, projection=weights
        )
        output_name = graph.EMBEDDING_OUTPUT
    info = out_dir / PROJECTION_INFO_FILE
    if projection is None:
        info.unlink(missing_ok=True)
    else:
        info.write_text(json.dumps(projection.info(), indent=2, sort_keys=True) + "\n")
    written = graph.save_model(proto, out_dir / graph.ONNX_FILE)
    if graph.EXTERNAL_DATA_FILE not in [p.name for p in written]:
        (out_dir / graph.EXTERNAL_DATA_FILE).unlink(missing_ok=True)
    return output_name, graph.opset_of(proto)


def check_max_length(wanted: int, limit: int | None) -> int:
    """`wanted`, capped at the model's position limit; at least 2 (one token + a special)."""
    if limit and wanted > limit:
        return limit
    if wanted < 2:
        raise ExportInputError(f"--max-length must be at least 2 (got {wanted})")
    return wanted
