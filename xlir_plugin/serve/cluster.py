"""The engine `/v1/search` queries: found like `xlir search` finds it, connected on first use.

The settings come from the same flags and environment (`--engine`, `--es-*`, `XLIR_ES_*`,
else the node `xlir es|os start` left running). The server starts without an engine: an
embeddings-only server needs none, and an engine that is down at start may come up later.
"""

from __future__ import annotations

import threading

from ..connection import EsSettings, connect, public_url
from ..engines import Client
from ..errors import XlirError
from .api_errors import ApiError

PROBE_TIMEOUT_S = 2.0


class Cluster:
    """A lazily connected client; `client()` raises ApiError 503 when there is none."""

    def __init__(self, settings: EsSettings | None) -> None:
        self.settings = settings if settings and settings.url else None
        self._client: Client | None = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.settings is not None

    def describe(self) -> str:
        if not self.settings:
            return "none configured"
        return f"{self.settings.engine} at {public_url(self.settings.url)}"

    def client(self) -> Client:
        """The connected client (connecting now if not yet); blocking: call from a thread."""
        if self.settings is None:
            raise ApiError(
                503,
                "no search engine configured: start `xlir serve` with --es-url (or XLIR_ES_URL, "
                "or a node from `xlir es start`)",
                "engine_not_configured",
            )
        with self._lock:
            if self._client is None:
                try:
                    self._client = connect(self.settings)
                except XlirError as exc:
                    message = f"the search engine is not reachable: {exc}"
                    raise ApiError(503, message, "engine_down") from None
            return self._client

    def reachable(self) -> tuple[bool, str]:
        """Whether the engine answers now, and a line saying so (for `/ready`)."""
        try:
            _health(self.client())
        except ApiError as exc:
            return False, exc.message
        except Exception as exc:  # a connection or API error of either client
            status = getattr(getattr(exc, "meta", None), "status", None) or getattr(
                exc, "status_code", None
            )
            reason = type(exc).__name__ + (f" (HTTP {status})" if status else "")
            return False, f"the search engine is not reachable: {reason}"
        return True, f"{self.describe()} reachable"

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _health(client: Client) -> None:
    """`_cluster/health` (`GET /` may be refused: 405 on the local node) within a probe's
    time: a hung engine must not hold `/ready` for the client's 60 s and retries."""
    if hasattr(client, "options"):  # Elasticsearch
        client.options(request_timeout=PROBE_TIMEOUT_S, max_retries=0).cluster.health()
    else:  # opensearch-py takes it per call
        client.cluster.health(request_timeout=PROBE_TIMEOUT_S)
