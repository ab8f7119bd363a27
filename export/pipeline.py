"""The export step end to end: torch model -> ONNX (+ pooling head) -> fusions -> int8/fp16
-> parity check -> `model.onnx`, tokenizer files and `xlir.json` in the output directory."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from export import graph, parity
from export.errors import ExportInputError, ParityError
from export.probe import load_probe
from export.quantize import QUANTIZATIONS, cpu_preset, optimize, quantize_int8
from export.source import Source, load_source
from xlir_plugin.manifest import MANIFEST_FILE, Manifest

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
) -> ExportResult:
    """Export `model` (directory, `default` or hub id) into `output`; raise ExportInputError on
    bad input, ParityError when the parity thresholds are not met (unless `force`)."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    if quantize not in QUANTIZATIONS:
        raise ExportInputError(
            f"unknown --quantize value {quantize!r} (choose {', '.join(QUANTIZATIONS)})"
        )
    output = Path(output).expanduser()
    if output.exists() and not output.is_dir():
        raise ExportInputError(f"output exists and is not a directory: {output}")
    source = load_source(model)
    settings = source.settings
    settings.max_length = _max_length(source, max_length or settings.max_length)
    probe_set = load_probe(probe)
    thresholds = thresholds or parity.Thresholds.default(quantize)

    steps = tqdm(total=6, desc="export", unit="step", disable=not progress)
    with tempfile.TemporaryDirectory(prefix="xlir-export-") as tmp:
        tmp = Path(tmp)
        final = tmp / "final"
        final.mkdir()

        steps.set_description("export: torch -> onnx")
        onnx_path = graph.export_hidden_states(source.path, tmp / "raw", opset)
        steps.update()

        steps.set_description("export: graph fusions" + (" + fp16" if quantize == "fp16" else ""))
        onnx_path = optimize(onnx_path, tmp / "optimized", source.config, fp16=quantize == "fp16")
        steps.update()

        preset = None
        if quantize == "int8":
            steps.set_description("export: int8 quantization")
            preset = quantize_int8(onnx_path, tmp / "int8.onnx", cpu_preset())
            onnx_path = tmp / "int8.onnx"
        steps.update()

        steps.set_description("export: pooling head")
        proto = graph.onnx.load(str(onnx_path))
        dim = source.config.hidden_size
        output_name = graph.HIDDEN_OUTPUT
        if pooling_in_graph:
            proto = graph.add_pooling_head(proto, settings.pooling, settings.normalize)
            output_name = graph.EMBEDDING_OUTPUT
        written = graph.save_model(proto, final / graph.ONNX_FILE)
        opset_used = graph.opset_of(proto)
        del proto
        _copy_tokenizer(source, final)
        steps.update()

        import onnxruntime

        manifest = Manifest(
            source_model=source.name,
            dim=dim,
            sha256="",
            encoder=settings,
            quantization=quantize,
            output=output_name,
            pooling_in_graph=pooling_in_graph,
            opset=opset_used,
            onnxruntime_version=onnxruntime.__version__,
        )
        manifest.sha256 = graph.sha256_of(final / graph.ONNX_FILE)
        manifest.save(final)

        steps.set_description("export: parity (torch)")
        ref = parity.torch_vectors(source.path, probe_set, settings, settings.max_length)
        steps.update()
        steps.set_description("export: parity (onnx)")
        got = parity.onnx_vectors(final, probe_set)
        figures = parity.compare(ref, got, paired=probe_set.name.startswith("xquad-r"))
        steps.update()
        steps.close()
        failed = parity.failures(figures, thresholds)
        manifest.parity = {
            **figures,
            "probe": probe_set.name,
            "thresholds": vars(thresholds),
            "passed": not failed,
            "forced": bool(failed and force),
        }
        if preset:
            manifest.parity["int8_preset"] = preset
        manifest.file_sizes = {
            p.name: p.stat().st_size for p in sorted(final.iterdir()) if p.name != MANIFEST_FILE
        }
        manifest.save(final)
        if failed and not force:
            raise ParityError(
                f"parity check failed ({'; '.join(failed)}) on {probe_set.name}: "
                "nothing written (--force to keep it)"
            )
        _install(final, output, [p.name for p in written])
    return ExportResult(output, manifest, failed, time.perf_counter() - start)


def _max_length(source: Source, wanted: int) -> int:
    limit = getattr(source.config, "max_position_embeddings", None)
    if limit:
        limit -= _POSITION_OFFSET.get(source.config.model_type, 0)
        if wanted > limit:
            return limit
    if wanted < 2:
        raise ExportInputError(f"--max-length must be at least 2 (got {wanted})")
    return wanted


def _copy_tokenizer(source: Source, dst: Path) -> None:
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


def _install(final: Path, output: Path, onnx_files: list[str]) -> None:
    """Move the finished files into `output`, dropping a stale external-data file."""
    output.mkdir(parents=True, exist_ok=True)
    if graph.EXTERNAL_DATA_FILE not in onnx_files:
        (output / graph.EXTERNAL_DATA_FILE).unlink(missing_ok=True)
    for path in final.iterdir():
        shutil.move(str(path), output / path.name)
