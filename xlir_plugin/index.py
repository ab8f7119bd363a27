"""Indexes made for one model: create, check, delete, and read their stamp.

The mapping and the `_meta` model stamp are built in `schema.py`. Every write or search
checks the stamp against the model in hand and refuses on any difference: vectors from two
models in one index would give silently wrong results. The stamp is read once per client
and index (`cached_meta`) and forgotten when the index is deleted. The engine's own calls and
vector mapping are behind `engines.engine_of(es)`.
"""

from __future__ import annotations

import weakref
from typing import Any

from .chunking import ChunkSettings, check_chunking
from .engines import Client, EngineApiError, engine_of, error_type
from .errors import InputError, XlirError
from .manifest import Manifest
from .schema import (
    META_KEY,
    VECTOR_FIELD,
    build_mappings,
    check_meta,
    parse_index_options,
    vector_property,
)

_META: weakref.WeakKeyDictionary[Client, dict[str, dict[str, Any]]] = weakref.WeakKeyDictionary()


def index_exists(es: Client, name: str) -> bool:
    return engine_of(es).index_exists(es, name)


def delete_index(es: Client, name: str) -> bool:
    """Delete `name` if it exists; True when something was deleted."""
    forget_index(es, name)
    return engine_of(es).delete_index(es, name)


def create_index(
    es: Client,
    name: str,
    manifest: Manifest,
    index_options: dict[str, Any] | str | None = None,
    extra_mappings: dict[str, Any] | None = None,
    shards: int = 1,
    replicas: int = 0,
    similarity: str | None = None,
    chunking: ChunkSettings | None = None,
) -> dict[str, Any]:
    """Create `name` for `manifest`'s model; return its `_meta.xlir` (with effective options).

    chunking: a chunked index (`schema.passages_mapping`: one nested vector per passage),
    its settings stamped in `_meta.xlir.chunking`.

    index_options: None gives XLIR's default (`schema.DEFAULT_INDEX_OPTIONS`: int8_hnsw, m 32,
    ef_construction 200, rescored with oversample 3, chosen for recall@10 >= .98; not the
    server's bbq_hnsw); else a dict or a spec for `parse_index_options`. The options the
    server actually used are read back and recorded in `_meta.xlir.index_options`.
    """
    engine = engine_of(es)
    options = parse_index_options(index_options)
    stamp = chunking.stamp() if chunking else None
    mappings = build_mappings(
        manifest, options, extra_mappings, similarity, engine.vector_mapping, stamp
    )
    try:
        engine.create_index(es, name, mappings, engine.index_settings(shards, replicas))
    except EngineApiError as exc:
        if error_type(exc) == "resource_already_exists_exception":
            raise InputError(f"index {name!r} already exists") from None
        raise XlirError(f"cannot create index {name!r}: {_reason(exc)}") from None
    meta = dict(mappings["_meta"][META_KEY])
    meta["index_options"] = engine.read_vector_mapping(_vector_mapping(es, name))["index_options"]
    engine.put_meta(es, name, {META_KEY: meta})
    return meta


def ensure_index(
    es: Client,
    name: str,
    manifest: Manifest,
    index_options: dict[str, Any] | str | None = None,
    chunking: ChunkSettings | None = None,
    **create_kwargs: Any,
) -> dict[str, Any]:
    """Create `name` for the model if it does not exist, else check it was made for it (and
    with the same chunking: `chunking.check_chunking`)."""
    if not index_exists(es, name):
        try:
            return create_index(
                es, name, manifest, index_options, chunking=chunking, **create_kwargs
            )
        except InputError as exc:
            if "already exists" not in str(exc):  # lost a race with another writer: check it
                raise
    meta = check_index(es, name, manifest, chunking)
    wanted = parse_index_options(index_options)
    have = meta.get("index_options") or {}
    if wanted and have.get("type") != wanted["type"]:
        raise InputError(
            f"index {name!r} already exists with index type {have.get('type')!r}, not "
            f"{wanted['type']!r}: delete it or use another index name"
        )
    return meta


def index_meta(es: Client, name: str) -> dict[str, Any]:
    """The `_meta.xlir` stamp of `name` plus the live vector mapping (`dims`,
    `index_options`); InputError when the index is missing or was not made by XLIR."""
    engine = engine_of(es)
    try:
        resp = engine.get_mapping(es, name)
    except EngineApiError as exc:
        if exc.status_code != 404:
            raise
        raise InputError(f"index {name!r} does not exist (create it with `xlir index`)") from None
    if len(resp) != 1:
        raise InputError(f"{name!r} names {len(resp)} indexes; give exactly one index")
    mappings = next(iter(resp.values()))["mappings"]
    meta = (mappings.get("_meta") or {}).get(META_KEY)
    vector = vector_property(mappings.get("properties") or {})
    if not meta or not vector or vector.get("type") != engine.vector_type:
        raise InputError(
            f"index {name!r} was not created by xlir (no _meta.{META_KEY} stamp or no "
            f"{VECTOR_FIELD!r} {engine.vector_type} field, top-level or in nested "
            "`passages`): use another index name"
        )
    live = engine.read_vector_mapping(vector)
    meta = dict(meta)
    meta["mapping_dims"] = live["dims"]
    meta["index_options"] = live["index_options"] or meta.get("index_options") or {}
    meta["similarity"] = live["similarity"] or meta.get("similarity")
    return meta


def cached_meta(es: Client, index: str) -> dict[str, Any]:
    """The index's `_meta.xlir` stamp, read once per (client, index)."""
    per_client = _META.setdefault(es, {})
    if index not in per_client:
        per_client[index] = index_meta(es, index)
    return per_client[index]


def forget_index(es: Client, index: str | None = None) -> None:
    """Drop cached stamps (after deleting or recreating an index)."""
    if index is None:
        _META.pop(es, None)
    else:
        _META.get(es, {}).pop(index, None)


def check_index(
    es: Client, name: str, manifest: Manifest, chunking: ChunkSettings | None = None
) -> dict[str, Any]:
    """Return the index stamp when `name` was made for `manifest`'s model and these chunking
    settings (None: one vector per document), else ModelMismatch."""
    meta = index_meta(es, name)
    check_meta(name, meta, manifest)
    check_chunking(name, meta.get("chunking"), chunking)
    return meta


def _vector_mapping(es: Client, name: str) -> dict[str, Any]:
    resp = engine_of(es).get_mapping(es, name)
    mappings = next(iter(resp.values()))["mappings"]
    return vector_property(mappings["properties"])


def _reason(exc: EngineApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        reason = error.get("reason") or error.get("type") or str(exc)
        cause = error.get("caused_by") or {}
        if cause.get("reason") and cause.get("reason") != reason:
            reason += f" ({cause['reason']})"
        return f"{reason} [HTTP {exc.status_code}]"
    return str(exc)
