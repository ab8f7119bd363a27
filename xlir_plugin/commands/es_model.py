"""`xlir es|os install-model`: an exported model for the in-engine plugin, on every node."""

from __future__ import annotations

import argparse
import json

from ..connection_flags import add_es_flags


def register_install_model(actions: argparse._SubParsersAction, engine: str, label: str) -> None:
    parser = actions.add_parser(
        "install-model",
        help=f"copy an exported model into {label} for the in-engine plugin",
        description="Copies model.onnx, tokenizer.json and xlir.json into "
        "<config>/xlir/models/<name>/ of every running node (picked up within 2 s, no restart) "
        f"and of the local {label} home (nodes started later).",
    )
    parser.add_argument(
        "--model", default="default", help="exported model dir, or `default` (default: default)"
    )
    parser.add_argument(
        "--name", help="name to install it under (default: `default`, or the directory's name)"
    )
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")
    add_es_flags(parser)
    parser.set_defaults(handler=run_install_model, engine=engine)


def run_install_model(args: argparse.Namespace) -> int:
    from ..connection_flags import settings_from_args
    from ..engine_install import check_name, default_name, install_model
    from ..models import resolve_served_model

    name = check_name(args.name or default_name(args.model))
    src = resolve_served_model(args.model)
    settings = settings_from_args(args)
    written = install_model(src, name, settings if settings.url else None)
    if args.json:
        print(json.dumps({"name": name, "model": str(src), "installed": [str(p) for p in written]}))
    else:
        print(f"installed {src} as model {name!r} in:")
        for path in written:
            print(f"  {path}")
        print(f"use it: xlir index --in-engine --model {name} ... | xlir search --in-engine ...")
    return 0


def installed_model(es, args: argparse.Namespace, **conflicts: str):
    """The model `--model` names in the engine (`--in-engine`): an exported dir or `default`
    is installed on the running nodes first. `conflicts`: flags that do not go with
    `--in-engine`, and why."""
    from ..connection_flags import settings_from_args
    from ..engine_install import ensure_installed
    from ..errors import InputError

    settings = settings_from_args(args)
    for name, why in conflicts.items():
        if getattr(args, name):
            raise InputError(
                f"{{{name}}} does not go with {{in_engine}}: {why}", arguments=[name, "in_engine"]
            )
    return ensure_installed(es, settings, args.model)
