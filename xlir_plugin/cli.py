"""The `xlir` command line: one verb per job, errors on stderr in one line, exit codes 0/1/2.

Exit codes: 0 success, 1 the job ran but something failed (e.g. documents rejected),
2 bad input or an unreachable/misconfigured service.
"""

from __future__ import annotations

import argparse
import sys

from . import commands
from .connection_flags import ES_FLAGS
from .errors import XlirError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xlir",
        description="Cross-lingual retrieval on Elasticsearch: index, search, evaluate, demo, serve.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for register in commands.REGISTRY:
        register(verbs)
    for verb in verbs.choices.values():
        verb.set_defaults(flags=flags_of(verb))
        for action in verb._actions:  # `xlir es install-model`: the action's own flags
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    sub.set_defaults(flags=flags_of(sub))
    return parser


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Argument name -> the flag that sets it (`targets` -> `--target`), so that an error
    names what the user typed. The `--es-*` flags set the `EsSettings` fields."""
    flags = {
        action.dest: max(action.option_strings, key=len)
        for action in parser._actions
        if action.option_strings
    }
    flags.update({name: flags[f"es_{name}"] for name in ES_FLAGS if f"es_{name}" in flags})
    return flags


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except XlirError as exc:
        print(f"xlir: error: {exc.spelled(args.flags)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xlir: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
