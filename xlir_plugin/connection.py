"""Connecting to Elasticsearch with settings from flags or the environment, failing clearly."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

from elasticsearch import AuthenticationException, Elasticsearch
from elasticsearch import ConnectionError as EsConnectionError

from .errors import ConnectionFailed
from .paths import cache_dir

ENV_PREFIX = "XLIR_ES_"


@dataclass
class EsSettings:
    """Where the cluster is and how to authenticate. Secrets never get a default."""

    url: str | None = None
    api_key: str | None = None
    user: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    request_timeout: float = 60.0

    @classmethod
    def from_env(cls, **overrides: object) -> EsSettings:
        """`XLIR_ES_URL`, `XLIR_ES_API_KEY`, `XLIR_ES_USER`, ... with explicit values winning."""
        values: dict[str, object] = {}
        for f in fields(cls):
            env = os.environ.get(ENV_PREFIX + f.name.upper())
            if env:
                values[f.name] = float(env) if f.name == "request_timeout" else env
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"EsSettings(url={self.url!r}, user={self.user!r}, api_key={'***' if self.api_key else None})"


def client(settings: EsSettings) -> Elasticsearch:
    """A client for the settings, not yet checked (see `connect`)."""
    if not settings.url:
        raise ConnectionFailed(
            "no Elasticsearch URL: pass --es-url, set XLIR_ES_URL, or start a local node "
            "with `xlir es start`"
        )
    auth: dict[str, object] = {}
    if settings.api_key:
        auth["api_key"] = settings.api_key
    elif settings.user:
        auth["basic_auth"] = (settings.user, settings.password or "")
    return Elasticsearch(
        settings.url,
        ca_certs=settings.ca_certs,
        request_timeout=settings.request_timeout,
        retry_on_timeout=True,
        max_retries=3,
        **auth,
    )


def connect(settings: EsSettings) -> Elasticsearch:
    """A client that has answered one request, or a one-line error naming what went wrong."""
    es = client(settings)
    try:
        es.cluster.health()
    except AuthenticationException as exc:
        who = (
            f"user {settings.user!r}"
            if settings.user
            else "the API key"
            if settings.api_key
            else "no credentials"
        )
        raise ConnectionFailed(
            f"Elasticsearch at {settings.url} rejected authentication with {who} "
            f"(HTTP 401): check --es-user/--es-password or --es-api-key"
        ) from exc
    except EsConnectionError as exc:
        raise ConnectionFailed(
            f"cannot reach Elasticsearch at {settings.url}: {exc.message}"
        ) from exc
    return es


def local_node_file() -> Path:
    """Where `xlir es start` records the node it started (URL, user, password; mode 0600)."""
    return cache_dir() / "es-node.json"


def resolve_settings(**flags: object) -> EsSettings:
    """Flags, then `XLIR_ES_*` variables, then the node `xlir es start` left running."""
    settings = EsSettings.from_env(**flags)
    if settings.url or not local_node_file().is_file():
        return settings
    node = json.loads(local_node_file().read_text())
    local = {"url": node["url"], "user": node["user"], "password": node["password"]}
    return EsSettings.from_env(**{**local, **{k: v for k, v in flags.items() if v is not None}})
