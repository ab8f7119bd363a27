"""The in-engine path: the `xlir` plugin (plugins/elasticsearch/, plugins/opensearch/) embeds
documents and queries inside the node.

Python sends text only. An index gets an ingest pipeline `xlir-<model>` with the `xlir_embed`
processor as its `index.default_pipeline`, so raw documents are embedded inside the node; a
search sends the text in the engine's text kNN clause (`Engine.knn_clause` with a
`TextQuery`: Elasticsearch's `query_vector_builder: {"xlir": ...}`, OpenSearch's `xlir_knn`).
The model is the one installed on the nodes under a name (`engine_install.py`); `GET
_xlir/models` describes it, so the index gets the same `_meta.xlir` stamp as with the Python
encoder and either path may search it. Both engines' plugins answer the same `_xlir/...`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .chunking import ChunkSettings
from .engines import Client, EngineApiError, TextQuery, engine_of
from .errors import InputError, XlirError
from .index import cached_meta, ensure_index
from .manifest import EncoderSettings, Manifest
from .schema import PASSAGES_FIELD, VECTOR_FIELD, check_meta

PROCESSOR = "xlir_embed"
TRUNCATED_FIELD = f"{VECTOR_FIELD}_truncated"


def target_field(chunking: ChunkSettings | None) -> str:
    """Where `xlir_embed` writes: `embedding`, or the nested `passages` of a chunked index."""
    return PASSAGES_FIELD if chunking else VECTOR_FIELD


def engine_mappings(chunking: ChunkSettings | None) -> dict[str, Any]:
    """The processor's truncation flag (`<target>_truncated`: a text, or one of its
    passages, cut at the model's max length)."""
    return {f"{target_field(chunking)}_truncated": {"type": "boolean"}}


class EngineError(XlirError):
    """The plugin is missing, or refused a request; the message says what to do."""


class PluginMissing(EngineError):
    """The cluster has no `xlir` plugin (no `_xlir` endpoints)."""


class ModelNotInstalled(EngineError):
    """No model of that name in the nodes' models directory."""


def call(
    es: Client,
    method: str,
    path: str,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A plugin endpoint (either engine's plugin answers the same `_xlir/...`); an HTTP error
    becomes an EngineError in the plugin's own words."""
    try:
        return engine_of(es).request(es, method, path, body, params)
    except EngineApiError as exc:
        reason = error_reason(exc)
        if "no handler found" in reason:
            raise PluginMissing(
                "the xlir plugin is not installed on this cluster: start the node with "
                "`xlir es start` (or `xlir os start`) after `bash scripts/setup.sh` (which "
                "builds it), or use the client-side path (leave out --in-engine)"
            ) from None
        raise EngineError(f"{method} {path} failed: {reason}") from None


def error_reason(exc: EngineApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error") or exc.message
    if isinstance(error, dict):
        causes = error.get("root_cause") or []
        reason = error.get("reason") or (causes[0].get("reason") if causes else None)
        return str(reason or error.get("type"))
    return str(error)


@dataclass
class EngineModel:
    """A model installed on the cluster's nodes, as `GET _xlir/models/<name>` describes it."""

    name: str
    entry: dict[str, Any]

    @property
    def manifest(self) -> Manifest:
        e = self.entry
        return Manifest(
            source_model=e["source_model"],
            dim=int(e["dims"]),
            sha256=e["sha256"],
            quantization=e.get("quantization", "none"),
            encoder=EncoderSettings(
                pooling=e.get("pooling", "mean"),
                normalize=bool(e.get("normalize", True)),
                query_prefix=e.get("query_prefix", ""),
                passage_prefix=e.get("passage_prefix", ""),
                max_length=int(e.get("max_length", 512)),
            ),
        )

    @property
    def model_name(self) -> str:
        return str(self.entry.get("model") or self.manifest.model_name)

    @property
    def dim(self) -> int:
        return int(self.entry["dims"])


def models(es: Client, index: str | None = None) -> dict[str, Any]:
    """`GET _xlir/models`: every installed model, `models_dir`, the plugin's runtime versions."""
    return call(es, "GET", "/_xlir/models", params={"index": index} if index else None)


def engine_model(es: Client, name: str) -> EngineModel:
    """The model installed on the cluster under `name`, or an error saying how to install it."""
    try:
        listed = call(es, "GET", f"/_xlir/models/{name}")
    except PluginMissing:
        raise
    except EngineError as exc:
        if "is not installed" not in str(exc):
            raise
        engine = engine_of(es)
        verb = "os" if engine.name == "opensearch" else "es"
        raise ModelNotInstalled(
            f"no model {name!r} is installed in {engine.label}: install one with "
            f"`xlir {verb} install-model --model <exported dir|default> --name {name}`"
        ) from None
    entry = listed["models"][0]
    if entry.get("error"):
        label = engine_of(es).label
        raise EngineError(f"model {name!r} in {label} is not usable: {entry['error']}")
    return EngineModel(name, entry)


# -- ingest -------------------------------------------------------------------------------------


def pipeline_id(model: str, chunking: ChunkSettings | None = None) -> str:
    """`xlir-<model>`; a chunked index's pipeline names its settings (`-passages-N-M`)."""
    if chunking:
        return f"xlir-{model}-passages-{chunking.max_tokens}-{chunking.overlap_tokens}"
    return f"xlir-{model}"


def pipeline_processors(
    model: str,
    field_map: dict[str, str] | None = None,
    input_type: str = "passage",
    chunking: ChunkSettings | None = None,
) -> list[dict[str, Any]]:
    """The pipeline's processors: `text` -> `embedding` with the model's passage prefix (with
    `chunking`: -> one `{start, end, embedding}` per passage in `passages`)."""
    options = {"model": model, "field_map": field_map or {"text": target_field(chunking)}}
    if chunking:
        options["chunking"] = {
            "max_tokens": chunking.max_tokens,
            "overlap_tokens": chunking.overlap_tokens,
        }
    return [{PROCESSOR: options | {"input_type": input_type}}]


def put_pipeline(es: Client, model: str, chunking: ChunkSettings | None = None) -> str:
    """Create (or update) the pipeline `pipeline_id(model, chunking)`; return its id."""
    pipeline = pipeline_id(model, chunking)
    description = f"xlir: embed `text` into `{target_field(chunking)}` with model {model}"
    processors = pipeline_processors(model, chunking=chunking)
    try:
        engine_of(es).put_pipeline(es, pipeline, description, processors)
    except EngineApiError as exc:
        raise EngineError(
            f"cannot create ingest pipeline {pipeline!r}: {error_reason(exc)}"
        ) from None
    return pipeline


def ensure_engine_index(
    es: Client,
    index: str,
    model: EngineModel,
    index_options: dict[str, Any] | str | None = None,
    chunking: ChunkSettings | None = None,
) -> dict[str, Any]:
    """An index stamped for the model whose `default_pipeline` embeds with it; return the stamp.

    An existing index must have been made for the same model and chunking (ModelMismatch
    otherwise)."""
    extra = engine_mappings(chunking)
    meta = ensure_index(
        es, index, model.manifest, index_options, chunking=chunking, extra_mappings=extra
    )
    engine = engine_of(es)
    engine.put_properties(es, index, extra)
    pipeline = put_pipeline(es, model.name, chunking)
    engine.put_settings(es, index, {"index.default_pipeline": pipeline})
    return meta


def engine_ingest(
    es: Client,
    index: str,
    model: EngineModel,
    source: Any,
    *,
    index_options: dict[str, Any] | str | None = None,
    chunking: ChunkSettings | None = None,
    **kwargs: Any,
):
    """Index raw documents (no vectors computed here) through the model's pipeline (with
    `chunking`: the node cuts the passages); the report's `truncated` counts documents the
    engine marked as truncated."""
    from .ingest import ingest

    ensure_engine_index(es, index, model, index_options, chunking)
    pipeline = pipeline_id(model.name, chunking)
    report = ingest(es, index, None, source, pipeline=pipeline, in_engine=True, **kwargs)
    flag = {"term": {f"{target_field(chunking)}_truncated": True}}
    report.truncated = engine_of(es).count(es, index, flag)
    return report


# -- search -------------------------------------------------------------------------------------


def check_engine_index(es: Client, index: str, model: EngineModel) -> dict[str, Any]:
    """The index's stamp, when it was made for `model` (ModelMismatch naming both otherwise)."""
    meta = cached_meta(es, index)
    check_meta(index, meta, model.manifest)
    return meta


def engine_search(
    es: Client,
    index: str,
    model: EngineModel,
    text: str,
    mode: str = "multilingual",
    lang: str | None = None,
    targets: str | Sequence[str] | None = None,
    k: int = 10,
    *,
    filter: dict[str, Any] | list[dict[str, Any]] | None = None,
    check: bool = True,
    **knn: Any,
):
    """kNN by text: the node embeds `text` (the model's query prefix) and searches `index`.

    Same modes and filters as `search.search`; `knn`: `num_candidates`, `rescore`, `source`
    as for `search.knn_body`. check=False skips the index stamp check (the caller did it)."""
    from .search import _filters, _search, knn_body

    if not isinstance(text, str) or not text.strip():
        raise InputError("the query text is empty")
    filters = _filters(mode, lang, targets, filter)
    meta = check_engine_index(es, index, model) if check else cached_meta(es, index)
    knn["index_type"] = (meta.get("index_options") or {}).get("type")
    knn["chunked"] = bool(meta.get("chunking"))
    body = knn_body(TextQuery(model.name, text), k, filters=filters, engine=engine_of(es), **knn)
    return _search(es, index, body)
