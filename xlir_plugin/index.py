"""Elasticsearch indexes made for one model: mapping, `_meta` stamp, and the model check.

Every index XLIR creates records in its mapping `_meta` which model filled it
(`{"xlir": {"model", "dims", "sha256", "similarity", "index_options", ...}}`). Every later
write or search checks that stamp against the model in hand and refuses on any difference:
vectors from two models in one index would give silently wrong results.
"""

from __future__ import annotations

import json
from typing import Any

from elasticsearch import ApiError, Elasticsearch, NotFoundError

from .errors import InputError, ModelMismatch, XlirError
from .manifest import Manifest

VECTOR_FIELD = "embedding"
META_KEY = "xlir"
META_VERSION = 1
SIMILARITIES = ("cosine", "dot_product", "max_inner_product", "l2_norm")
INDEX_TYPES = (
    "hnsw",
    "int8_hnsw",
    "int4_hnsw",
    "bbq_hnsw",
    "flat",
    "int8_flat",
    "int4_flat",
    "bbq_flat",
    "bbq_disk",
)
HNSW_TYPES = ("hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw")
#: index types whose vectors are quantized, so an exact rescore (`rescore_vector`) helps
QUANTIZED_TYPES = (
    "int8_hnsw",
    "int4_hnsw",
    "bbq_hnsw",
    "int8_flat",
    "int4_flat",
    "bbq_flat",
    "bbq_disk",
)


def parse_index_options(spec: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """`index_options` for the vector field from a CLI-style spec.

    Accepts None (server default), a dict, a JSON object, or
    `TYPE[,key=value...]`, e.g. `int8_hnsw,m=32,ef_construction=200` or `bbq_hnsw,oversample=3`.
    """
    if spec is None or isinstance(spec, dict):
        return _validate_index_options(spec) if spec else None
    spec = spec.strip()
    if not spec:
        return None
    if spec.startswith("{"):
        try:
            options = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise InputError(f"index options are not valid JSON: {exc}") from None
        if not isinstance(options, dict):
            raise InputError("index options JSON must be an object")
        return _validate_index_options(options)
    head, *pairs = (p.strip() for p in spec.replace(":", ",").split(","))
    options: dict[str, Any] = {"type": head}
    for pair in pairs:
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep:
            raise InputError(f"index option {pair!r} is not key=value (in {spec!r})")
        options[key.strip()] = _number(value.strip())
    return _validate_index_options(options)


def _number(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def _validate_index_options(options: dict[str, Any]) -> dict[str, Any]:
    options = dict(options)
    kind = options.get("type")
    if kind not in INDEX_TYPES:
        raise InputError(f"index type must be one of {', '.join(INDEX_TYPES)}; got {kind!r}")
    if "oversample" in options:  # shorthand for the default rescore of quantized types
        options["rescore_vector"] = {"oversample": float(options.pop("oversample"))}
    for key in ("m", "ef_construction"):
        if key in options:
            if kind not in HNSW_TYPES:
                raise InputError(f"{key!r} applies to HNSW index types only, not {kind!r}")
            if not isinstance(options[key], int) or options[key] < 2:
                raise InputError(f"{key!r} must be an integer >= 2, got {options[key]!r}")
    if "rescore_vector" in options and kind not in QUANTIZED_TYPES:
        raise InputError(f"rescore applies to quantized index types only, not {kind!r}")
    return options


def index_exists(es: Elasticsearch, name: str) -> bool:
    return bool(es.indices.exists(index=name))


def delete_index(es: Elasticsearch, name: str) -> bool:
    """Delete `name` if it exists; True when something was deleted."""
    from .search import forget_index

    forget_index(es, name)
    resp = es.options(ignore_status=404).indices.delete(index=name)
    return bool(resp.get("acknowledged"))


def default_similarity(manifest: Manifest) -> str:
    """Cosine: right for normalized and unnormalized vectors alike (ES normalizes for it)."""
    return "cosine"


def model_meta(manifest: Manifest, similarity: str | None = None) -> dict[str, Any]:
    """The `_meta.xlir` stamp for an index filled by this model."""
    return {
        "version": META_VERSION,
        "model": manifest.model_name,
        "source_model": manifest.source_model,
        "quantization": manifest.quantization,
        "dims": int(manifest.dim),
        "sha256": manifest.sha256,
        "similarity": similarity or default_similarity(manifest),
        "normalize": bool(manifest.encoder.normalize),
    }


def build_mappings(
    manifest: Manifest,
    index_options: dict[str, Any] | None = None,
    extra_mappings: dict[str, Any] | None = None,
    similarity: str | None = None,
) -> dict[str, Any]:
    similarity = similarity or default_similarity(manifest)
    if similarity not in SIMILARITIES:
        raise InputError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    vector: dict[str, Any] = {
        "type": "dense_vector",
        "dims": int(manifest.dim),
        "index": True,
        "similarity": similarity,
    }
    if index_options:
        index_options = _validate_index_options(index_options)
        if index_options["type"].startswith("bbq") and manifest.dim < 64:
            raise InputError(
                f"{index_options['type']} needs at least 64 dims; {manifest.model_name} has "
                f"{manifest.dim}"
            )
        vector["index_options"] = index_options
    properties: dict[str, Any] = {
        "id": {"type": "keyword"},
        "lang": {"type": "keyword"},
        "text": {"type": "text"},
        "title": {"type": "text"},
    }
    for name, spec in (extra_mappings or {}).items():
        if name == VECTOR_FIELD:
            raise InputError(f"extra mapping {name!r} would replace the vector field")
        properties[name] = spec
    properties[VECTOR_FIELD] = vector
    return {"_meta": {META_KEY: model_meta(manifest, similarity)}, "properties": properties}


def create_index(
    es: Elasticsearch,
    name: str,
    manifest: Manifest,
    index_options: dict[str, Any] | str | None = None,
    extra_mappings: dict[str, Any] | None = None,
    shards: int = 1,
    replicas: int = 0,
    similarity: str | None = None,
) -> dict[str, Any]:
    """Create `name` for `manifest`'s model; return its `_meta.xlir` (with effective options).

    index_options: None lets Elasticsearch choose (9.x: int8_hnsw below 384 dims, bbq_hnsw
    from 384); else a dict or a spec for `parse_index_options`. The type the server actually
    used is read back and recorded in `_meta.xlir.index_options`.
    """
    options = parse_index_options(index_options)
    mappings = build_mappings(manifest, options, extra_mappings, similarity)
    try:
        es.indices.create(
            index=name,
            mappings=mappings,
            settings={"number_of_shards": shards, "number_of_replicas": replicas},
        )
    except ApiError as exc:
        if _error_type(exc) == "resource_already_exists_exception":
            raise InputError(f"index {name!r} already exists") from None
        raise XlirError(f"cannot create index {name!r}: {_reason(exc)}") from None
    meta = dict(mappings["_meta"][META_KEY])
    meta["index_options"] = _vector_mapping(es, name).get("index_options", {})
    es.indices.put_mapping(index=name, meta={META_KEY: meta})
    return meta


def ensure_index(
    es: Elasticsearch,
    name: str,
    manifest: Manifest,
    index_options: dict[str, Any] | str | None = None,
    **create_kwargs: Any,
) -> dict[str, Any]:
    """Create `name` for the model if it does not exist, else check it was made for it."""
    if not index_exists(es, name):
        try:
            return create_index(es, name, manifest, index_options, **create_kwargs)
        except InputError as exc:
            if "already exists" not in str(exc):  # lost a race with another writer: check it
                raise
    meta = check_index(es, name, manifest)
    wanted = parse_index_options(index_options)
    have = meta.get("index_options") or {}
    if wanted and have.get("type") != wanted["type"]:
        raise InputError(
            f"index {name!r} already exists with index type {have.get('type')!r}, not "
            f"{wanted['type']!r}: delete it or use another index name"
        )
    return meta


def index_meta(es: Elasticsearch, name: str) -> dict[str, Any]:
    """The `_meta.xlir` stamp of `name` plus the live vector mapping (`dims`,
    `index_options`); InputError when the index is missing or was not made by XLIR."""
    try:
        resp = es.indices.get_mapping(index=name)
    except NotFoundError:
        raise InputError(f"index {name!r} does not exist (create it with `xlir index`)") from None
    if len(resp.body) != 1:
        raise InputError(f"{name!r} names {len(resp.body)} indexes; give exactly one index")
    mappings = next(iter(resp.body.values()))["mappings"]
    meta = (mappings.get("_meta") or {}).get(META_KEY)
    vector = (mappings.get("properties") or {}).get(VECTOR_FIELD)
    if not meta or not vector or vector.get("type") != "dense_vector":
        raise InputError(
            f"index {name!r} was not created by xlir (no _meta.{META_KEY} stamp or no "
            f"{VECTOR_FIELD!r} dense_vector field): use another index name"
        )
    meta = dict(meta)
    meta["mapping_dims"] = vector.get("dims")
    meta["index_options"] = vector.get("index_options") or meta.get("index_options") or {}
    meta["similarity"] = vector.get("similarity", meta.get("similarity"))
    return meta


def check_index(es: Elasticsearch, name: str, manifest: Manifest) -> dict[str, Any]:
    """Return the index stamp when `name` was made for `manifest`'s model, else ModelMismatch."""
    meta = index_meta(es, name)
    check_meta(name, meta, manifest)
    return meta


def check_meta(name: str, meta: dict[str, Any], manifest: Manifest) -> None:
    problems = []
    dims = meta.get("mapping_dims", meta.get("dims"))
    if dims != manifest.dim or meta.get("dims") != manifest.dim:
        problems.append(f"dims {meta.get('dims')} vs {manifest.dim}")
    if meta.get("sha256") != manifest.sha256:
        problems.append(f"sha256 {meta.get('sha256')} vs {manifest.sha256}")
    if problems:
        raise ModelMismatch(
            f"index {name!r} was built with model {meta.get('model')!r} "
            f"(dims {meta.get('dims')}, sha256 {meta.get('sha256')}), not with "
            f"{manifest.model_name!r} (dims {manifest.dim}, sha256 {manifest.sha256}): "
            f"{'; '.join(problems)}. Use the same model, or index into a new index."
        )


def check_dims(name: str, meta: dict[str, Any], dims: int) -> None:
    """For callers with vectors but no manifest: the vector length must match the index."""
    want = meta.get("mapping_dims", meta.get("dims"))
    if want != dims:
        raise ModelMismatch(
            f"index {name!r} holds {want}-dim vectors of model {meta.get('model')!r}; "
            f"got {dims}-dim vectors"
        )


def _vector_mapping(es: Elasticsearch, name: str) -> dict[str, Any]:
    resp = es.indices.get_mapping(index=name)
    mappings = next(iter(resp.body.values()))["mappings"]
    return mappings["properties"][VECTOR_FIELD]


def _error_type(exc: ApiError) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    return (body.get("error") or {}).get("type") if isinstance(body.get("error"), dict) else None


def _reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        reason = error.get("reason") or error.get("type") or str(exc)
        cause = error.get("caused_by") or {}
        if cause.get("reason") and cause.get("reason") != reason:
            reason += f" ({cause['reason']})"
        return f"{reason} [HTTP {exc.status_code}]"
    return str(exc)
