"""Cached exports: `ensure_exported("default")` -> cache_dir()/models/<name>-onnx-int8."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from xlir_plugin.default_model import BASE_MODEL_NAME, BUNDLED_MODEL_NAMES, DEFAULT_MODEL_NAME
from xlir_plugin.manifest import MANIFEST_FILE, Manifest

# cache folder names of the bundled encoder with the shipped projection head, and without it
BUNDLED_DIRS = {
    DEFAULT_MODEL_NAME: "multilingual-e5-small-xlir",
    BASE_MODEL_NAME: "multilingual-e5-small",
}
_SUFFIX = {"int8": "int8", "none": "fp32", "fp32": "fp32", "fp16": "fp16"}


def exported_dir(model: str = "default", quantize: str = "int8") -> Path:
    """Where the export of `model` at `quantize` lives in the cache (may not exist yet)."""
    from xlir_plugin.paths import cache_dir

    if quantize not in _SUFFIX:
        from export.errors import ExportInputError

        raise ExportInputError(f"unknown quantization {quantize!r} (int8, fp16 or none)")
    if model in BUNDLED_DIRS:
        name = BUNDLED_DIRS[model]
    else:
        name = Path(model.rstrip("/")).name or model.replace("/", "--")
        if "/" in model and not Path(model).expanduser().exists():  # hub id: owner--name
            name = model.replace("/", "--")
    return cache_dir() / "models" / f"{name}-onnx-{_SUFFIX[quantize]}"


def ensure_exported(model: str = "default", quantize: str = "int8") -> Path:
    """The exported directory for `model`, exporting it once (parity-checked) if missing, or
    again when its manifest is unreadable, the source directory changed after the export, an
    int8 export was made by an older int8 recipe, or the default's projection head changed."""
    out = exported_dir(model, quantize)
    if (out / MANIFEST_FILE).is_file() and (out / "model.onnx").is_file():
        try:
            manifest = Manifest.load(out)
        except (ValueError, TypeError, KeyError):
            manifest = None  # a broken manifest: export again
        if (
            manifest
            and not _source_newer(manifest.source_model, out / MANIFEST_FILE)
            and not _old_recipe(manifest)
            and not _other_projection(model, out)
        ):
            return out
    from export.pipeline import export_model

    quantize = "none" if quantize == "fp32" else quantize
    export_model(model, out, quantize=quantize, progress=sys.stderr.isatty())
    return out


def _source_newer(source: str, manifest_path: Path) -> bool:
    """True when a local source model has files modified after `manifest_path` was written."""
    if source in BUNDLED_MODEL_NAMES:
        from xlir_plugin.default_model import default_model_dir

        src = default_model_dir()
    else:
        src = Path(source).expanduser()
    if not src.is_dir():
        return False  # a hub id, or a source that is gone: keep what we have
    written = manifest_path.stat().st_mtime
    return any(p.stat().st_mtime > written for p in src.iterdir() if p.is_file())


def _old_recipe(manifest: Manifest) -> bool:
    """True for an int8 export made before the current int8 recipe (export.quantize)."""
    from export.quantize import INT8_RECIPE_VERSION

    if manifest.quantization != "int8":
        return False
    return (manifest.parity.get("int8_recipe") or {}).get("version") != INT8_RECIPE_VERSION


def _other_projection(model: str, out: Path) -> bool:
    """True when the default's export holds another projection head than the shipped one."""
    if model != DEFAULT_MODEL_NAME:
        return False
    from xlir_plugin.projection import PROJECTION_INFO_FILE, default_projection

    shipped = default_projection()
    try:
        recorded = json.loads((out / PROJECTION_INFO_FILE).read_text()).get("sha256")
    except (OSError, ValueError):
        recorded = None  # no head in the export (or an unreadable record of one)
    return recorded != (shipped.sha256 if shipped else None)
