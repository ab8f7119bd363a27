"""The connection flags every verb shares (`--engine`, `--es-*`), and the client they name.

Kept apart from `cli.py` so that the verbs in `commands/` can use them without importing the
command line that imports the verbs.
"""

from __future__ import annotations

import argparse

from .connection import EsSettings, connect
from .engines import ENGINES, Client

#: EsSettings field -> (flag, help); each flag also reads `XLIR_ES_<FIELD>` from the environment
ES_FLAGS = {
    "url": ("--es-url", "e.g. http://127.0.0.1:9200 (XLIR_ES_URL)"),
    "api_key": ("--es-api-key", "API key (XLIR_ES_API_KEY)"),
    "user": ("--es-user", "basic-auth user (XLIR_ES_USER)"),
    "password": ("--es-password", "basic-auth password (XLIR_ES_PASSWORD)"),
    "ca_certs": ("--es-ca-certs", "CA bundle for https (XLIR_ES_CA_CERTS)"),
}


def add_es_flags(parser: argparse.ArgumentParser) -> None:
    """The connection flags, in their own help group."""
    group = parser.add_argument_group(
        "cluster (defaults: XLIR_ENGINE and XLIR_ES_* env, else `xlir es|os start`'s node)"
    )
    group.add_argument(
        "--engine",
        choices=ENGINES,
        help="the engine the --es-* flags point at (XLIR_ENGINE; default elasticsearch)",
    )
    for name, (flag, text) in ES_FLAGS.items():
        group.add_argument(flag, dest=f"es_{name}", help=text)


def settings_from_args(args: argparse.Namespace) -> EsSettings:
    """Flags, then the environment, then the local node: `EsSettings.from_env`, as in Python."""
    given = {name: getattr(args, f"es_{name}") for name in ES_FLAGS}
    return EsSettings.from_env(engine=args.engine, **given)


def es_from_args(args: argparse.Namespace) -> Client:
    """A client that has answered one request, for the flags the user gave."""
    return connect(settings_from_args(args))
