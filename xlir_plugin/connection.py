"""Connecting to the cluster, found the same way from Python and from the command line.

`EsSettings.from_env(**explicit)` is the one way: explicit values (the CLI's `--es-*` flags
and `--engine`), then `XLIR_ES_*` variables and `XLIR_ENGINE`, then the node `xlir es start`
(or `xlir os start`, for `engine="opensearch"`) left running. The engine is named, not
detected: the Elasticsearch client refuses a server that is not Elasticsearch (its product
check), so the client is chosen before the first request, and a wrong choice fails at
`connect` in one line. `connect` checks the cluster answers and says in one line what went
wrong when it does not (the engine's adapter, `engines/`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .engines import Client, engine_named
from .errors import ConnectionFailed
from .paths import cache_dir

ENV_PREFIX = "XLIR_ES_"
ENGINE_ENV = "XLIR_ENGINE"
#: the file each engine's `xlir <verb> start` records its node in
NODE_FILES = {"elasticsearch": "es-node.json", "opensearch": "os-node.json"}


@dataclass
class EsSettings:
    """Where the cluster is and how to authenticate. Secrets never get a default."""

    url: str | None = None  # one URL, or several separated by commas (the client fails over)
    api_key: str | None = None
    user: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    request_timeout: float = 60.0
    engine: str = "elasticsearch"  # or "opensearch": which client and adapter (`engines/`)

    @classmethod
    def from_env(cls, **explicit: object) -> EsSettings:
        """Explicit values, then `XLIR_ES_URL`, `XLIR_ES_API_KEY`, `XLIR_ES_USER`, ..., then
        the node `xlir es start` left running (its URL and credentials go together)."""
        values: dict[str, object] = {}
        for f in fields(cls):
            env = os.environ.get(ENGINE_ENV if f.name == "engine" else ENV_PREFIX + f.name.upper())
            if env:
                values[f.name] = float(env) if f.name == "request_timeout" else env
        given = {k: v for k, v in explicit.items() if v is not None}
        engine = str(given.get("engine") or values.get("engine") or cls.engine)
        if not given.get("url") and not values.get("url"):
            values.update(local_node_settings(engine))
        return cls(**(values | given))  # type: ignore[arg-type]

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return (
            f"EsSettings(engine={self.engine!r}, url={public_url(self.url)!r}, user={self.user!r}, "
            f"api_key={'***' if self.api_key else None})"
        )


def local_node_file(engine: str = "elasticsearch") -> Path:
    """Where `xlir es start` (`xlir os start`) records the node it started (URL, user,
    password; mode 0600)."""
    return cache_dir() / NODE_FILES[engine]


def local_node_settings(engine: str = "elasticsearch") -> dict[str, str]:
    """The URL and credentials of the node `xlir es|os start` recorded; empty when none."""
    path = local_node_file(engine)
    if not path.is_file():
        return {}
    node = json.loads(path.read_text())
    found = {"url": node["url"], "user": node["user"], "password": node["password"]}
    if node.get("ca_certs"):  # the node serves HTTPS with a CA made for it
        found["ca_certs"] = node["ca_certs"]
    return found


def public_url(url: str | None) -> str | None:
    """`url` without any `user:password@` in it, for messages and JSON output (each of a
    comma-separated list of node URLs)."""
    if not url:
        return url
    if "," in url:
        return ",".join(str(public_url(one.strip())) for one in url.split(","))
    parts = urlsplit(url)
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _require_url(settings: EsSettings) -> None:
    if not settings.url:
        start = "xlir os start" if settings.engine == "opensearch" else "xlir es start"
        raise ConnectionFailed(
            "no cluster URL: give {url=http://127.0.0.1:9200}, set XLIR_ES_URL, or start "
            f"a local node with `{start}`",
            arguments=["url"],
        )


def client(settings: EsSettings) -> Client:
    """A client for the settings' engine, not yet checked (see `connect`)."""
    _require_url(settings)
    return engine_named(settings.engine).client(settings)


def connect(settings: EsSettings) -> Client:
    """A client that has answered one request, or a one-line error naming what went wrong."""
    _require_url(settings)
    return engine_named(settings.engine).connect(settings, public_url(settings.url))
