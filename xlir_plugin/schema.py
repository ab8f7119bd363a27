"""The index schema: the mapping an XLIR index gets and the `_meta` stamp of its model.

Every index XLIR creates records in its mapping `_meta` which model filled it
(`{"xlir": {"model", "dims", "sha256", "similarity", "index_options", ...}}`); `check_meta`
compares a stamp with the model in hand. Plain data and checks: no Elasticsearch calls here
(those are in `index.py`), so the serving modules and the tests can share them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from .errors import InputError, ModelMismatch
from .manifest import Manifest

VECTOR_FIELD = "embedding"
#: a chunked index's nested field: one {start, end, embedding} per passage of `text`
PASSAGES_FIELD = "passages"
META_KEY = "xlir"
META_VERSION = 1
#: right for normalized and unnormalized vectors alike (Elasticsearch normalizes for it)
DEFAULT_SIMILARITY = "cosine"
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
#: the vector index XLIR creates when none is asked for. Chosen from recall@10 against exact
#: search vs kNN latency on the XQuAD-R pool (results/ann-defaults.md, benchmarks/test_ann.py):
#: Elasticsearch's own choice at 384 dims, bbq_hnsw, stops near .93 at num_candidates 100 (its
#: 1-bit vectors lose neighbours that an oversample of 3 cannot win back); int8 alone stops
#: near .95 without a rescore; the m=16 graph needs num_candidates 200+ for .98. int8 in a
#: denser graph, rescored with the float vectors, reaches .99 at num_candidates 100 for the
#: same latency (graph building costs little next to encoding the documents).
DEFAULT_INDEX_OPTIONS: dict[str, Any] = {
    "type": "int8_hnsw",
    "m": 32,
    "ef_construction": 200,
    "rescore_vector": {"oversample": 3.0},
}


def default_index_options() -> dict[str, Any]:
    """A fresh copy of `DEFAULT_INDEX_OPTIONS` (callers may change what they get)."""
    return copy.deepcopy(DEFAULT_INDEX_OPTIONS)


def default_index_spec() -> str:
    """`DEFAULT_INDEX_OPTIONS` as a `--index-options` spec, for help texts."""
    options = default_index_options()
    rescore = options.pop("rescore_vector", {})
    parts = [options.pop("type"), *(f"{k}={v}" for k, v in options.items())]
    if rescore:
        parts.append(f"oversample={rescore['oversample']:g}")
    return ",".join(parts)


def parse_index_options(spec: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """`index_options` for the vector field from a CLI-style spec.

    Accepts None (XLIR's default, `DEFAULT_INDEX_OPTIONS`, applied by `build_mappings`), a
    dict, a JSON object, or
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
            raise InputError(
                f"{{index_options}} is not valid JSON: {exc}", arguments=["index_options"]
            ) from None
        if not isinstance(options, dict):
            raise InputError("{index_options} must be a JSON object", arguments=["index_options"])
        return _validate_index_options(options)
    head, *pairs = (p.strip() for p in spec.replace(":", ",").split(","))
    options: dict[str, Any] = {"type": head}
    for pair in pairs:
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep:
            raise InputError(
                f"{{index_options}}: {pair!r} is not key=value (in {spec!r})",
                arguments=["index_options"],
            )
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
        raise InputError(
            f"{{index_options}}: the index type must be one of {', '.join(INDEX_TYPES)}; "
            f"got {kind!r}",
            arguments=["index_options"],
        )
    if "oversample" in options:  # shorthand for the default rescore of quantized types
        options["rescore_vector"] = {"oversample": float(options.pop("oversample"))}
    for key in ("m", "ef_construction"):
        if key in options:
            if kind not in HNSW_TYPES:
                raise InputError(
                    f"{{index_options}}: {key!r} applies to HNSW index types only, not {kind!r}",
                    arguments=["index_options"],
                )
            if not isinstance(options[key], int) or options[key] < 2:
                raise InputError(
                    f"{{index_options}}: {key!r} must be an integer >= 2, got {options[key]!r}",
                    arguments=["index_options"],
                )
    if "rescore_vector" in options and kind not in QUANTIZED_TYPES:
        raise InputError(
            f"{{index_options}}: rescore applies to quantized index types only, not {kind!r}",
            arguments=["index_options"],
        )
    return options


def model_meta(
    manifest: Manifest, similarity: str | None = None, chunking: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The `_meta.xlir` stamp for an index filled by this model (`chunking`: the stamp of its
    `ChunkSettings`, recorded only for a chunked index)."""
    chunked = {"chunking": dict(chunking)} if chunking else {}
    return chunked | {
        "version": META_VERSION,
        "model": manifest.model_name,
        "source_model": manifest.source_model,
        "quantization": manifest.quantization,
        "dims": int(manifest.dim),
        "sha256": manifest.sha256,
        "similarity": similarity or DEFAULT_SIMILARITY,
        "normalize": bool(manifest.encoder.normalize),
    }


def dense_vector(
    dims: int, similarity: str, index_options: dict[str, Any] | None
) -> dict[str, Any]:
    """Elasticsearch's `dense_vector` field; index_options None gives `DEFAULT_INDEX_OPTIONS`,
    so every index XLIR makes (client or in-engine path) meets the recall it was measured for,
    whatever the server would pick."""
    index_options = _validate_index_options(index_options or default_index_options())
    if index_options["type"].startswith("bbq") and dims < 64:
        raise InputError(f"{index_options['type']} needs at least 64 dims; the model has {dims}")
    return {
        "type": "dense_vector",
        "dims": int(dims),
        "index": True,
        "similarity": similarity,
        "index_options": index_options,
    }


def build_mappings(
    manifest: Manifest,
    index_options: dict[str, Any] | None = None,
    extra_mappings: dict[str, Any] | None = None,
    similarity: str | None = None,
    vector_mapping: Callable[[int, str, dict[str, Any] | None], dict[str, Any]] = dense_vector,
    chunking: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The index mappings for `manifest`'s model, stamped in `_meta`.

    vector_mapping: the engine's vector field (`Engine.vector_mapping`; Elasticsearch's
    `dense_vector` by default) for (dims, similarity, index_options).
    chunking: the `ChunkSettings.stamp()` of a chunked index: its vectors are in the nested
    field `passages` ({start, end, embedding} per passage), with no top-level `embedding`.
    """
    similarity = similarity or DEFAULT_SIMILARITY
    if similarity not in SIMILARITIES:
        raise InputError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
    vector = vector_mapping(int(manifest.dim), similarity, index_options)
    properties: dict[str, Any] = {
        "id": {"type": "keyword"},
        "lang": {"type": "keyword"},
        "text": {"type": "text"},
        "title": {"type": "text"},
    }
    for name, spec in (extra_mappings or {}).items():
        if name in (VECTOR_FIELD, PASSAGES_FIELD):
            raise InputError(f"extra mapping {name!r} would replace the vector field")
        properties[name] = spec
    if chunking:
        properties[PASSAGES_FIELD] = passages_mapping(vector)
    else:
        properties[VECTOR_FIELD] = vector
    meta = model_meta(manifest, similarity, chunking)
    return {"_meta": {META_KEY: meta}, "properties": properties}


def passages_mapping(vector: dict[str, Any]) -> dict[str, Any]:
    """The nested field of a chunked index (the in-engine processor writes the same)."""
    return {
        "type": "nested",
        "properties": {
            "start": {"type": "integer"},
            "end": {"type": "integer"},
            VECTOR_FIELD: vector,
        },
    }


def vector_property(properties: dict[str, Any]) -> dict[str, Any] | None:
    """The vector field's mapping: top-level `embedding`, or `passages.embedding` when chunked."""
    if VECTOR_FIELD in properties:
        return properties[VECTOR_FIELD]
    nested = properties.get(PASSAGES_FIELD) or {}
    if nested.get("type") != "nested":
        return None
    return (nested.get("properties") or {}).get(VECTOR_FIELD)


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
