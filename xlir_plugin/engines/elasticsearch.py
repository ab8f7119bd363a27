"""Elasticsearch behind `Engine`: the `elasticsearch` client (9.x), `dense_vector`, the `knn`
query with `num_candidates` and `rescore_vector`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from elastic_transport import TlsError
from elasticsearch import (
    ApiError,
    AuthenticationException,
    Elasticsearch,
    TransportError,
    UnsupportedProductError,
)
from elasticsearch import ConnectionError as EsConnectionError

from ..errors import ConnectionFailed
from ..schema import PASSAGES_FIELD, VECTOR_FIELD, dense_vector
from .base import (
    EngineApiError,
    EngineUnreachable,
    Filters,
    Json,
    TextQuery,
    checked,
    msearch_lines,
)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except ApiError as exc:
        raise EngineApiError(exc.status_code, exc.body, str(exc.message)) from exc
    except TransportError as exc:
        raise EngineUnreachable(str(exc)) from exc


class ElasticsearchEngine:
    name = "elasticsearch"
    label = "Elasticsearch"
    vector_type = "dense_vector"
    master_metric = "master_node"  # the cluster state metric naming the elected master
    rescores = True  # `rescore_vector` on the knn query

    def client(self, settings: Any) -> Elasticsearch:
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

    def connect(self, settings: Any, url: str) -> Elasticsearch:
        who = (
            f"user {settings.user!r}"
            if settings.user
            else "the API key"
            if settings.api_key
            else "no credentials"
        )
        try:
            return checked(
                self.client(settings),
                self.label,
                url,
                auth=(
                    AuthenticationException,
                    f" with {who}",
                    "{user} and {password}, or {api_key}",
                    ["user", "password", "api_key"],
                ),
                tls=(TlsError, tls_reason),
                unreachable=(EsConnectionError, lambda exc: exc.message),
            )
        except UnsupportedProductError as exc:  # the client's product check: not Elasticsearch
            raise ConnectionFailed(
                f"{url} is not Elasticsearch ({exc.message}): for OpenSearch give "
                "{engine=opensearch}",
                arguments=["engine"],
            ) from exc

    def vector_mapping(self, dims: int, similarity: str, index_options: Json | None) -> Json:
        return dense_vector(dims, similarity, index_options)

    def index_settings(self, shards: int, replicas: int) -> dict[str, Any]:
        return {"number_of_shards": shards, "number_of_replicas": replicas}

    def read_vector_mapping(self, vector: dict[str, Any]) -> dict[str, Any]:
        return {
            "dims": vector.get("dims"),
            "similarity": vector.get("similarity"),
            "index_options": vector.get("index_options") or {},
        }

    def knn_clause(
        self, query: list[float] | TextQuery, k: int, n: int, filters: Filters, rescore
    ) -> Json:
        knn: Json = {"field": VECTOR_FIELD, "k": k, "num_candidates": n}
        if isinstance(query, TextQuery):  # the plugin's `xlir` query vector builder
            knn["query_vector_builder"] = {"xlir": {"model": query.model, "text": query.text}}
        else:
            knn["query_vector"] = query
        if filters:
            knn["filter"] = list(filters)
        if rescore is not None:
            knn["rescore_vector"] = {"oversample": rescore}
        return {"knn": knn}

    def nested_knn(
        self, query: list[float] | TextQuery, k: int, n: int, filters: Filters, rescore, inner: Json
    ) -> Json:
        """The top-level `knn` section, which takes `inner_hits` and filters on the parent
        documents' fields; `k` counts documents, each scored by its best passage."""
        knn = self.knn_clause(query, k, n, filters, rescore)["knn"]
        knn["field"] = f"{PASSAGES_FIELD}.{VECTOR_FIELD}"
        knn["inner_hits"] = inner
        return {"knn": knn}

    def create_index(
        self, es: Elasticsearch, name: str, mappings: dict[str, Any], settings: dict[str, Any]
    ) -> None:
        with _errors():
            es.indices.create(index=name, mappings=mappings, settings=settings)

    def index_exists(self, es: Elasticsearch, name: str) -> bool:
        with _errors():
            return bool(es.indices.exists(index=name))

    def delete_index(self, es: Elasticsearch, name: str) -> bool:
        with _errors():
            resp = es.options(ignore_status=404).indices.delete(index=name)
        return bool(resp.get("acknowledged"))

    def get_mapping(self, es: Elasticsearch, name: str) -> dict[str, Any]:
        with _errors():
            return es.indices.get_mapping(index=name).body

    def put_meta(self, es: Elasticsearch, name: str, meta: dict[str, Any]) -> None:
        with _errors():
            es.indices.put_mapping(index=name, meta=meta)

    def get_settings(self, es: Elasticsearch, name: str) -> dict[str, Any]:
        with _errors():
            return es.indices.get_settings(index=name).body

    def put_settings(self, es: Elasticsearch, name: str, settings: dict[str, Any]) -> None:
        with _errors():
            es.indices.put_settings(index=name, settings=settings)

    def search(
        self, es: Elasticsearch, index: str, body: dict[str, Any], filter_path: str | None = None
    ) -> dict[str, Any]:
        with _errors():
            return es.search(index=index, body=body, filter_path=filter_path).body

    def msearch(self, es: Elasticsearch, index: str, bodies: list[dict[str, Any]]) -> list[dict]:
        with _errors():
            return es.msearch(searches=msearch_lines(index, bodies))["responses"]

    def bulk(
        self, es: Elasticsearch, operations: list[Any], pipeline: str | None
    ) -> dict[str, Any]:
        extra = {"pipeline": pipeline} if pipeline else {}
        with _errors():  # 429/5xx come back here, to be counted
            return es.options(retry_on_status=()).bulk(operations=operations, **extra).body

    def mget(
        self, es: Elasticsearch, index: str, ids: list[str], source_excludes: list[str]
    ) -> dict:
        with _errors():
            return es.mget(index=index, ids=ids, source_excludes=source_excludes).body

    def count(self, es: Elasticsearch, index: str, query: Json | None = None) -> int:
        with _errors():
            return int(es.count(index=index, query=query)["count"])

    def put_properties(self, es: Elasticsearch, name: str, properties: Json) -> None:
        with _errors():
            es.indices.put_mapping(index=name, properties=properties)

    def put_pipeline(
        self, es: Elasticsearch, pipeline: str, description: str, processors: list
    ) -> None:
        with _errors():
            es.ingest.put_pipeline(id=pipeline, description=description, processors=processors)

    def refresh(self, es: Elasticsearch, index: str) -> None:
        with _errors():
            es.indices.refresh(index=index)

    def request(self, es: Elasticsearch, method: str, path: str, body: Json | None, params) -> Json:
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        with _errors():
            return es.perform_request(method, path, params=params, headers=headers, body=body).body


def tls_reason(exc: TlsError) -> str:
    """The verifier's own words (e.g. `self-signed certificate in certificate chain`)."""
    text = str(exc.message)
    for marker in ("certificate verify failed: ", "CERTIFICATE_VERIFY_FAILED"):
        if marker in text:
            return "certificate verify failed: " + text.split(marker, 1)[1].split(" (_ssl")[0]
    return text[:200]
