"""The `xlir` command line: one verb per job, errors on stderr in one line, exit codes 0/1/2.

Exit codes: 0 success, 1 the job ran but something failed (e.g. documents rejected),
2 bad input or an unreachable/misconfigured service.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from .errors import XlirError

Handler = Callable[[argparse.Namespace], int]


def add_es_flags(parser: argparse.ArgumentParser) -> None:
    """Connection flags; each also reads `XLIR_ES_<NAME>` from the environment."""
    group = parser.add_argument_group(
        "Elasticsearch (defaults: XLIR_ES_* env, else `xlir es start`'s node)"
    )
    group.add_argument("--es-url", help="e.g. http://127.0.0.1:9200 (XLIR_ES_URL)")
    group.add_argument("--es-api-key", help="API key (XLIR_ES_API_KEY)")
    group.add_argument("--es-user", help="basic-auth user (XLIR_ES_USER)")
    group.add_argument("--es-password", help="basic-auth password (XLIR_ES_PASSWORD)")
    group.add_argument("--es-ca-certs", help="CA bundle for https (XLIR_ES_CA_CERTS)")


def es_from_args(args: argparse.Namespace):
    """A checked client from the flags, the environment, or the local node."""
    from .connection import connect, resolve_settings

    return connect(
        resolve_settings(
            url=args.es_url,
            api_key=args.es_api_key,
            user=args.es_user,
            password=args.es_password,
            ca_certs=args.es_ca_certs,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    from . import commands

    parser = argparse.ArgumentParser(
        prog="xlir",
        description="Cross-lingual retrieval on Elasticsearch: index, search, evaluate, demo.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for register in commands.REGISTRY:
        register(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except XlirError as exc:
        print(f"xlir: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("xlir: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
