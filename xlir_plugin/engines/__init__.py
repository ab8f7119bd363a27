"""The search engines XLIR serves, each behind `base.Engine`: pick one by name (`--engine`,
`XLIR_ENGINE`) or by the client in hand.

The OpenSearch adapter is imported only when asked for, so an Elasticsearch-only install needs
no `opensearch-py`.
"""

from __future__ import annotations

import functools

from .base import Client, Engine, EngineApiError, EngineUnreachable, TextQuery, error_type
from .elasticsearch import ElasticsearchEngine

ENGINES = ("elasticsearch", "opensearch")
ELASTICSEARCH = ElasticsearchEngine()

__all__ = [
    "ELASTICSEARCH",
    "ENGINES",
    "Client",
    "Engine",
    "EngineApiError",
    "EngineUnreachable",
    "TextQuery",
    "engine_named",
    "engine_of",
    "error_type",
]


@functools.cache
def engine_named(name: str) -> Engine:
    """The adapter for `elasticsearch` or `opensearch` (one each: they hold no state)."""
    if name == "elasticsearch":
        return ELASTICSEARCH
    if name == "opensearch":
        from .opensearch import OpenSearchEngine

        return OpenSearchEngine()
    from ..errors import InputError

    raise InputError(
        f"{{engine}} must be one of {', '.join(ENGINES)}; got {name!r}", arguments=["engine"]
    )


def engine_of(client: Client) -> Engine:
    """The adapter for a client object: an `opensearchpy.OpenSearch` is OpenSearch, anything
    else Elasticsearch (the modules' callers pass the client they connected)."""
    if type(client).__module__.startswith("opensearchpy"):
        return engine_named("opensearch")
    return ELASTICSEARCH
