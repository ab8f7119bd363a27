"""Connecting to Elasticsearch, found the same way from Python and from the command line.

`EsSettings.from_env(**explicit)` is the one way: explicit values (the CLI's `--es-*` flags),
then `XLIR_ES_*` variables, then the node `xlir es start` left running. `connect` checks the
cluster answers and says in one line what went wrong when it does not.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from elastic_transport import TlsError
from elasticsearch import AuthenticationException, Elasticsearch
from elasticsearch import ConnectionError as EsConnectionError

from .errors import ConnectionFailed
from .paths import cache_dir

ENV_PREFIX = "XLIR_ES_"


@dataclass
class EsSettings:
    """Where the cluster is and how to authenticate. Secrets never get a default."""

    url: str | None = None  # one URL, or several separated by commas (the client fails over)
    api_key: str | None = None
    user: str | None = None
    password: str | None = None
    ca_certs: str | None = None
    request_timeout: float = 60.0

    @classmethod
    def from_env(cls, **explicit: object) -> EsSettings:
        """Explicit values, then `XLIR_ES_URL`, `XLIR_ES_API_KEY`, `XLIR_ES_USER`, ..., then
        the node `xlir es start` left running (its URL and credentials go together)."""
        values: dict[str, object] = {}
        for f in fields(cls):
            env = os.environ.get(ENV_PREFIX + f.name.upper())
            if env:
                values[f.name] = float(env) if f.name == "request_timeout" else env
        given = {k: v for k, v in explicit.items() if v is not None}
        if not given.get("url") and not values.get("url"):
            values.update(local_node_settings())
        return cls(**(values | given))  # type: ignore[arg-type]

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return (
            f"EsSettings(url={public_url(self.url)!r}, user={self.user!r}, "
            f"api_key={'***' if self.api_key else None})"
        )


def local_node_file() -> Path:
    """Where `xlir es start` records the node it started (URL, user, password; mode 0600)."""
    return cache_dir() / "es-node.json"


def local_node_settings() -> dict[str, str]:
    """The URL and credentials of the node `xlir es start` recorded; empty when there is none."""
    path = local_node_file()
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


def client(settings: EsSettings) -> Elasticsearch:
    """A client for the settings, not yet checked (see `connect`)."""
    if not settings.url:
        raise ConnectionFailed(
            "no Elasticsearch URL: give {url=http://127.0.0.1:9200}, set XLIR_ES_URL, or start "
            "a local node with `xlir es start`",
            arguments=["url"],
        )
    auth: dict[str, object] = {}
    if settings.api_key:
        auth["api_key"] = settings.api_key
    elif settings.user:
        auth["basic_auth"] = (settings.user, settings.password or "")
    hosts = [one.strip() for one in settings.url.split(",") if one.strip()]
    return Elasticsearch(
        hosts,
        ca_certs=settings.ca_certs,
        request_timeout=settings.request_timeout,
        retry_on_timeout=True,
        max_retries=3,
        **auth,
    )


def connect(settings: EsSettings) -> Elasticsearch:
    """A client that has answered one request, or a one-line error naming what went wrong."""
    es = client(settings)
    url = public_url(settings.url)
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
            f"Elasticsearch at {url} rejected authentication with {who} (HTTP 401): check "
            "{user} and {password}, or {api_key}",
            arguments=["user", "password", "api_key"],
        ) from exc
    except TlsError as exc:
        raise ConnectionFailed(
            f"Elasticsearch at {url} presented a TLS certificate that could not be verified "
            f"({_tls_reason(exc)}): give the CA that signed it with {{ca_certs}}",
            arguments=["ca_certs"],
        ) from exc
    except EsConnectionError as exc:
        raise ConnectionFailed(f"cannot reach Elasticsearch at {url}: {exc.message}") from exc
    return es


def _tls_reason(exc: TlsError) -> str:
    """The verifier's own words (e.g. `self-signed certificate in certificate chain`)."""
    text = str(exc.message)
    for marker in ("certificate verify failed: ", "CERTIFICATE_VERIFY_FAILED"):
        if marker in text:
            return "certificate verify failed: " + text.split(marker, 1)[1].split(" (_ssl")[0]
    return text[:200]
