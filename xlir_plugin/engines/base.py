"""What differs between the search engines XLIR serves, as one small interface.

The serving modules (`index`, `search`, `bulk`, `ingest`) are written once against `Engine`:
an adapter builds the client, the vector field's mapping and the kNN query clause, makes the
few API calls they need with plain dict answers, and turns the client's exceptions into
`EngineApiError` (the server answered with an error status) and `EngineUnreachable` (no
answer at all), so no module branches on the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: an Elasticsearch or an OpenSearch client (`engines.engine_of` tells which)
Client = Any
Json = dict[str, Any]
Filters = Sequence[Json]


@dataclass(frozen=True)
class TextQuery:
    """A kNN query by text, embedded inside the node by the xlir plugin's model `model` (the
    in-engine path); `knn_clause` takes it where it takes a vector."""

    model: str
    text: str


class EngineApiError(Exception):
    """The engine answered a request with an error status; `body` is its JSON error."""

    def __init__(self, status_code: int, body: Any, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
        self.message = message


class EngineUnreachable(Exception):
    """No answer from any node the client knows (connection refused, reset or timed out)."""


class Engine(Protocol):
    """One search engine: its client, its vector mapping and kNN query, its API calls."""

    name: str  # "elasticsearch" | "opensearch", as `--engine` spells it
    label: str  # for messages: "Elasticsearch"
    vector_type: str  # the mapping type of the vector field
    master_metric: str  # the cluster state metric naming the elected master
    rescores: bool  # whether a quantized index's hits can be rescored on float vectors

    def client(self, settings: Any) -> Client:
        """A client for `connection.EsSettings`, not yet checked."""
        ...

    def connect(self, settings: Any, url: str) -> Client:
        """A client that has answered one request, or ConnectionFailed in one line (naming
        `url`, the URL without credentials)."""
        ...

    def vector_mapping(self, dims: int, similarity: str, index_options: Json | None) -> Json:
        """The vector field's mapping (None: XLIR's measured default for this engine)."""
        ...

    def index_settings(self, shards: int, replicas: int) -> dict[str, Any]: ...

    def read_vector_mapping(self, vector: dict[str, Any]) -> dict[str, Any]:
        """`{dims, similarity, index_options}` of a live vector field, in XLIR's terms."""
        ...

    def knn_clause(
        self, query: list[float] | TextQuery, k: int, n: int, filters: Filters, rescore
    ) -> Json:
        """The `query` of a kNN search for a vector, or for a text the plugin embeds: `k` best
        of `n` candidates, `filters` applied inside the clause (a pre-filter); `rescore`:
        oversample factor (float), or None."""
        ...

    def nested_knn(
        self, query: list[float] | TextQuery, k: int, n: int, filters: Filters, rescore, inner: Json
    ) -> Json:
        """The part of a search body (`knn` or `query`) for a chunked index: the `k` documents
        whose best passage (`passages.embedding`) is nearest, of `n` candidates, `filters` on
        the documents' own fields, `inner` the `inner_hits` that name the best passages."""
        ...

    def create_index(self, es: Client, name: str, mappings: Json, settings: Json) -> None: ...

    def index_exists(self, es: Client, name: str) -> bool: ...

    def delete_index(self, es: Client, name: str) -> bool: ...

    def get_mapping(self, es: Client, name: str) -> dict[str, Any]: ...

    def put_meta(self, es: Client, name: str, meta: dict[str, Any]) -> None: ...

    def get_settings(self, es: Client, name: str) -> dict[str, Any]: ...

    def put_settings(self, es: Client, name: str, settings: dict[str, Any]) -> None: ...

    def search(
        self, es: Client, index: str, body: Json, filter_path: str | None = None
    ) -> Json: ...

    def msearch(self, es: Client, index: str, bodies: list[dict[str, Any]]) -> list[dict]: ...

    def bulk(self, es: Client, operations: list[Any], pipeline: str | None) -> dict[str, Any]:
        """One `_bulk`, without the client's own retries on 429/5xx (`bulk.send` counts them)."""
        ...

    def mget(self, es: Client, index: str, ids: list[str], source_excludes: list[str]) -> dict: ...

    def count(self, es: Client, index: str, query: Json | None = None) -> int: ...

    def put_properties(self, es: Client, name: str, properties: Json) -> None:
        """Add fields to an index's mapping."""
        ...

    def put_pipeline(self, es: Client, pipeline: str, description: str, processors: list) -> None:
        """Create or replace an ingest pipeline."""
        ...

    def request(self, es: Client, method: str, path: str, body: Json | None, params) -> Json:
        """Any other endpoint (the xlir plugin's `_xlir/...`), its JSON answer."""
        ...

    def refresh(self, es: Client, index: str) -> None: ...


def checked(
    client: Client,
    label: str,
    url: str,
    auth: tuple[type[Exception], str, str, list[str]],
    tls: tuple[type[Exception], Callable[[Any], str]],
    unreachable: tuple[type[Exception], Callable[[Any], str]],
) -> Client:
    """`client` once it has answered a cluster health request, else ConnectionFailed in one
    line. auth: (the client's 401 error, who we were, what to check, the arguments named);
    tls, unreachable: (the client's error, what it says)."""
    from ..errors import ConnectionFailed

    try:
        client.cluster.health()
    except auth[0] as exc:
        raise ConnectionFailed(
            f"{label} at {url} rejected authentication{auth[1]} (HTTP 401): check {auth[2]}",
            arguments=auth[3],
        ) from exc
    except tls[0] as exc:
        raise ConnectionFailed(
            f"{label} at {url} presented a TLS certificate that could not be verified "
            f"({tls[1](exc)}): give the CA that signed it with {{ca_certs}}",
            arguments=["ca_certs"],
        ) from exc
    except unreachable[0] as exc:
        raise ConnectionFailed(f"cannot reach {label} at {url}: {unreachable[1](exc)}") from exc
    return client


def msearch_lines(index: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An `_msearch` request: a header naming `index` before each body."""
    return [line for body in bodies for line in ({"index": index}, body)]


def error_type(exc: EngineApiError) -> str | None:
    """The `error.type` of the engine's answer (both engines use the same names)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    return (body.get("error") or {}).get("type") if isinstance(body.get("error"), dict) else None
