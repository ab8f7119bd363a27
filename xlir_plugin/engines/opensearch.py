"""OpenSearch behind `Engine`: `opensearch-py` (the project's official client), a `knn_vector`
field on the k-NN plugin's lucene HNSW, and the `knn` query with the filter inside it.

Lucene only: it filters during the graph search (a true pre-filter, which the language modes
need: k hits even when a language is a small part of the pool), and it is pure Java, while
faiss and nmslib need the plugin's native libraries. The k-NN zip on Maven Central (what
`xlir os start` installs) has none: an index using them is accepted, then its first refresh
takes the whole node down. XLIR therefore refuses them before anything is sent.
Lucene sets its search beam (`ef_search`) to the query's `k`, so the `knn` clause asks for
`num_candidates` neighbours and the search's `size` keeps the best `k`: the same meaning as
Elasticsearch's `num_candidates` from XLIR's default of 100 up (below 100, OpenSearch 3.5
evidently still explores 100: recall is flat from 10 to 100 candidates, results/scale.md).
Index options: `hnsw` (float vectors, the default here) and `int8_hnsw`, which is lucene's
scalar quantizer (`encoder` `sq`, 7 bits: the same Lucene format as Elasticsearch's
`int8_hnsw`); OpenSearch 3.5 refuses its 1-bit variant, so `bbq_hnsw` has no equivalent, and
the lucene engine does not rescore, so `oversample` is refused rather than ignored.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from opensearchpy import OpenSearch
from opensearchpy.exceptions import (
    AuthenticationException,
    NotFoundError,
    SSLError,
    TransportError,
)
from opensearchpy.exceptions import ConnectionError as OsConnectionError

from ..errors import ConnectionFailed, InputError
from ..schema import PASSAGES_FIELD, VECTOR_FIELD
from .base import (
    EngineApiError,
    EngineUnreachable,
    Filters,
    Json,
    TextQuery,
    checked,
    msearch_lines,
)

#: XLIR's similarity names -> the k-NN plugin's space types (lucene supports these three)
SPACE_TYPES = {
    "cosine": "cosinesimil",
    "dot_product": "innerproduct",
    "max_inner_product": "innerproduct",
    "l2_norm": "l2",
}
#: the HNSW graph XLIR builds: Elasticsearch's measured default graph (m 32, ef_construction
#: 200; schema.DEFAULT_INDEX_OPTIONS), so both engines search graphs of the same shape; the
#: plugin's own defaults are m 16, ef_construction 100.
DEFAULT_PARAMETERS = {"m": 32, "ef_construction": 200}
NATIVE_ENGINES = ("faiss", "nmslib")
#: XLIR's index types -> the lucene `encoder` (None: float vectors)
ENCODERS: dict[str, Json | None] = {
    "hnsw": None,
    "int8_hnsw": {"name": "sq", "parameters": {"bits": 7}},
}


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except OsConnectionError as exc:
        raise EngineUnreachable(str(exc)) from exc
    except TransportError as exc:
        status = exc.status_code if isinstance(exc.status_code, int) else 500
        raise EngineApiError(status, exc.info, str(exc.error)) from exc


def lucene_method(index_options: dict[str, Any] | None) -> dict[str, Any]:
    """The `method` of the vector field for `index_options` (from `schema.parse_index_options`:
    `hnsw[,m=M][,ef_construction=E][,engine=lucene]`); a native engine is refused."""
    options = dict(index_options or {"type": "hnsw"})
    engine = options.pop("engine", "lucene")
    if engine in NATIVE_ENGINES:
        raise InputError(
            f"{{index_options}}: engine {engine!r} needs the k-NN plugin's native libraries, "
            "which a k-NN plugin installed from Maven Central (as `xlir os start` does) lacks; "
            "an index using them takes the node down at its first refresh. XLIR creates "
            "lucene-engine indexes only: leave out engine= or give engine=lucene",
            arguments=["index_options"],
        )
    if engine != "lucene":
        raise InputError(
            f"{{index_options}}: unknown k-NN engine {engine!r} (XLIR uses lucene)",
            arguments=["index_options"],
        )
    kind = options.pop("type")
    unknown = set(options) - set(DEFAULT_PARAMETERS)
    if kind not in ENCODERS or unknown:
        raise InputError(
            f"{{index_options}}: OpenSearch's lucene engine takes {' or '.join(ENCODERS)} with "
            f"m and ef_construction only (lucene does not rescore); got {kind!r}"
            + (f" with {sorted(unknown)}" if unknown else ""),
            arguments=["index_options"],
        )
    parameters = DEFAULT_PARAMETERS | options
    if ENCODERS[kind]:
        parameters["encoder"] = ENCODERS[kind]
    return {"name": "hnsw", "engine": "lucene", "parameters": parameters}


class OpenSearchEngine:
    name = "opensearch"
    label = "OpenSearch"
    vector_type = "knn_vector"
    master_metric = "cluster_manager_node"  # the cluster state metric naming the elected master
    rescores = False  # the lucene engine scores on the quantized vectors only

    def client(self, settings: Any) -> OpenSearch:
        if settings.api_key:
            raise ConnectionFailed(
                "OpenSearch takes no API key here: give {user} and {password}",
                arguments=["api_key", "user", "password"],
            )
        hosts = [one.strip() for one in settings.url.split(",") if one.strip()]
        secure = any(urlsplit(host).scheme == "https" for host in hosts)
        auth = {"http_auth": (settings.user, settings.password or "")} if settings.user else {}
        return OpenSearch(
            hosts,
            use_ssl=secure,
            verify_certs=secure,
            ca_certs=settings.ca_certs,
            timeout=settings.request_timeout,
            retry_on_timeout=True,
            max_retries=3,
            retry_on_status=(),  # 429/5xx come back to the caller (`bulk.send` counts them)
            **auth,
        )

    def connect(self, settings: Any, url: str) -> OpenSearch:
        return checked(
            self.client(settings),
            self.label,
            url,
            auth=(AuthenticationException, "", "{user} and {password}", ["user", "password"]),
            tls=(SSLError, lambda exc: exc.error),
            unreachable=(OsConnectionError, lambda exc: exc.error),
        )

    def vector_mapping(self, dims: int, similarity: str, index_options: Json | None) -> Json:
        method = lucene_method(index_options) | {"space_type": SPACE_TYPES[similarity]}
        return {"type": "knn_vector", "dimension": int(dims), "method": method}

    def index_settings(self, shards: int, replicas: int) -> dict[str, Any]:
        return {"number_of_shards": shards, "number_of_replicas": replicas, "knn": True}

    def read_vector_mapping(self, vector: dict[str, Any]) -> dict[str, Any]:
        method = vector.get("method") or {}
        space = method.get("space_type") or vector.get("space_type")
        similarity = next((k for k, v in SPACE_TYPES.items() if v == space), space)
        parameters = dict(method.get("parameters") or {})
        # an encoder XLIR knows names the type; any other (set outside XLIR) stays visible
        known = next((k for k, v in ENCODERS.items() if v == parameters.get("encoder")), None)
        if known:
            parameters.pop("encoder", None)
        kind = known or method.get("name")
        return {
            "dims": vector.get("dimension"),
            "similarity": similarity,
            "index_options": {"type": kind, "engine": method.get("engine")} | parameters,
        }

    def knn_clause(
        self, query: list[float] | TextQuery, k: int, n: int, filters: Filters, rescore
    ) -> Json:
        if rescore:
            raise InputError(
                "{rescore}: OpenSearch's lucene engine does not rescore quantized vectors; "
                "leave it out (or raise num_candidates)",
                arguments=["rescore"],
            )
        knn: Json = {"k": n}
        if filters:
            knn["filter"] = {"bool": {"filter": list(filters)}}
        if isinstance(query, TextQuery):  # the plugin's `xlir_knn`, rewritten into `knn`
            text = {"field": VECTOR_FIELD, "text": query.text, "model": query.model}
            return {"xlir_knn": text | knn}
        return {"knn": {VECTOR_FIELD: {"vector": query} | knn}}

    def nested_knn(
        self, query: list[float] | TextQuery, k: int, n: int, filters: Filters, rescore, inner: Json
    ) -> Json:
        """A `nested` query around the k-NN `knn` query (or the plugin's `xlir_knn`) on
        `passages.embedding` (a document scores as its best passage: `score_mode` max); the
        filter on the documents' own fields stays inside the clause, where k-NN applies it to
        the parents. `expand_nested_docs` (k-NN 2.19+): score every passage of the documents
        found, so `inner_hits` names more than the one passage that found the document."""
        field, expand = f"{PASSAGES_FIELD}.{VECTOR_FIELD}", {"expand_nested_docs": True}
        clause = self.knn_clause(query, k, n, filters, rescore)
        if "xlir_knn" in clause:
            query = {"xlir_knn": clause["xlir_knn"] | {"field": field} | expand}
        else:
            query = {"knn": {field: clause["knn"][VECTOR_FIELD] | expand}}
        nested = {"path": PASSAGES_FIELD, "query": query, "score_mode": "max", "inner_hits": inner}
        return {"query": {"nested": nested}}

    def create_index(
        self, es: OpenSearch, name: str, mappings: dict[str, Any], settings: dict[str, Any]
    ) -> None:
        with _errors():
            es.indices.create(index=name, body={"mappings": mappings, "settings": settings})

    def index_exists(self, es: OpenSearch, name: str) -> bool:
        with _errors():
            return bool(es.indices.exists(index=name))

    def delete_index(self, es: OpenSearch, name: str) -> bool:
        try:
            with _errors():
                return bool(es.indices.delete(index=name).get("acknowledged"))
        except EngineApiError as exc:
            if isinstance(exc.__cause__, NotFoundError):
                return False
            raise

    def get_mapping(self, es: OpenSearch, name: str) -> dict[str, Any]:
        with _errors():
            return es.indices.get_mapping(index=name)

    def put_meta(self, es: OpenSearch, name: str, meta: dict[str, Any]) -> None:
        with _errors():
            es.indices.put_mapping(index=name, body={"_meta": meta})

    def get_settings(self, es: OpenSearch, name: str) -> dict[str, Any]:
        with _errors():
            return es.indices.get_settings(index=name)

    def put_settings(self, es: OpenSearch, name: str, settings: dict[str, Any]) -> None:
        with _errors():
            es.indices.put_settings(index=name, body=settings)

    def search(
        self, es: OpenSearch, index: str, body: dict[str, Any], filter_path: str | None = None
    ) -> dict[str, Any]:
        extra = {"filter_path": filter_path} if filter_path else {}
        with _errors():
            return es.search(index=index, body=body, **extra)

    def msearch(self, es: OpenSearch, index: str, bodies: list[dict[str, Any]]) -> list[dict]:
        with _errors():
            return es.msearch(body=msearch_lines(index, bodies))["responses"]

    def bulk(self, es: OpenSearch, operations: list[Any], pipeline: str | None) -> dict[str, Any]:
        extra = {"pipeline": pipeline} if pipeline else {}
        with _errors():
            return es.bulk(body=operations, **extra)

    def mget(self, es: OpenSearch, index: str, ids: list[str], source_excludes: list[str]) -> dict:
        with _errors():
            return es.mget(index=index, body={"ids": ids}, _source_excludes=source_excludes)

    def count(self, es: OpenSearch, index: str, query: Json | None = None) -> int:
        with _errors():
            return int(es.count(index=index, body={"query": query} if query else None)["count"])

    def put_properties(self, es: OpenSearch, name: str, properties: Json) -> None:
        with _errors():
            es.indices.put_mapping(index=name, body={"properties": properties})

    def put_pipeline(
        self, es: OpenSearch, pipeline: str, description: str, processors: list
    ) -> None:
        with _errors():
            es.ingest.put_pipeline(
                id=pipeline, body={"description": description, "processors": processors}
            )

    def refresh(self, es: OpenSearch, index: str) -> None:
        with _errors():
            es.indices.refresh(index=index)

    def request(self, es: OpenSearch, method: str, path: str, body: Json | None, params) -> Json:
        with _errors():
            return es.transport.perform_request(method, path, params=params, body=body)
