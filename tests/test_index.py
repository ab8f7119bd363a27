"""Index creation for a model, its `_meta` stamp, and the refusal of other models."""

from __future__ import annotations

import dataclasses

import pytest

from tests.onnx_fixtures import build_onnx_model
from xlir_plugin.errors import InputError, ModelMismatch
from xlir_plugin.index import (
    check_index,
    create_index,
    delete_index,
    ensure_index,
    index_exists,
    index_meta,
)
from xlir_plugin.manifest import Manifest
from xlir_plugin.schema import (
    DEFAULT_INDEX_OPTIONS,
    build_mappings,
    default_index_spec,
    parse_index_options,
)

WORDS = ["the", "capital", "of", "germany", "is", "berlin", "paris"]


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Manifest:
    path = tmp_path_factory.mktemp("model16")
    build_onnx_model(path, WORDS, dim=16)
    return Manifest.load(path)


@pytest.fixture(scope="module")
def manifest64(tmp_path_factory) -> Manifest:
    path = tmp_path_factory.mktemp("model64")
    build_onnx_model(path, WORDS, dim=64)
    return Manifest.load(path)


# -- no node needed ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, None),
        ("", None),
        ("hnsw", {"type": "hnsw"}),
        (
            "int8_hnsw,m=32,ef_construction=200",
            {"type": "int8_hnsw", "m": 32, "ef_construction": 200},
        ),
        ("hnsw:m=8", {"type": "hnsw", "m": 8}),
        ("bbq_hnsw,oversample=2", {"type": "bbq_hnsw", "rescore_vector": {"oversample": 2.0}}),
        ('{"type": "flat"}', {"type": "flat"}),
        ({"type": "int8_flat"}, {"type": "int8_flat"}),
    ],
)
def test_parse_index_options(spec, expected):
    assert parse_index_options(spec) == expected


def test_default_index_spec_round_trips():
    """The spec the help texts show is the default itself."""
    assert parse_index_options(default_index_spec()) == DEFAULT_INDEX_OPTIONS


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ivf", "index type must be one of"),
        ("flat,m=16", "HNSW index types only"),
        ("hnsw,m", "not key=value"),
        ("hnsw,oversample=3", "quantized index types only"),
        ("hnsw,m=1", "integer >= 2"),
        ("{bad json", "not valid JSON"),
    ],
)
def test_bad_index_options(spec, message):
    with pytest.raises(InputError, match=message):
        parse_index_options(spec)


def test_mappings(manifest):
    mappings = build_mappings(manifest, extra_mappings={"url": {"type": "keyword"}})
    props = mappings["properties"]
    assert props["lang"] == {"type": "keyword"} and props["id"] == {"type": "keyword"}
    assert props["text"]["type"] == "text" and props["url"] == {"type": "keyword"}
    assert props["embedding"] == {
        "type": "dense_vector",
        "dims": 16,
        "index": True,
        "similarity": "cosine",
        "index_options": DEFAULT_INDEX_OPTIONS,  # XLIR's measured default, not the server's
    }
    flat = build_mappings(manifest, {"type": "flat"})["properties"]["embedding"]
    assert flat["index_options"] == {"type": "flat"}
    meta = mappings["_meta"]["xlir"]
    assert (meta["model"], meta["dims"], meta["sha256"]) == (
        manifest.model_name,
        16,
        manifest.sha256,
    )
    with pytest.raises(InputError, match="at least 64 dims"):
        build_mappings(manifest, {"type": "bbq_hnsw"})
    with pytest.raises(InputError, match="similarity"):
        build_mappings(manifest, similarity="manhattan")
    with pytest.raises(InputError, match="vector field"):
        build_mappings(manifest, extra_mappings={"embedding": {"type": "keyword"}})


# -- against the node -------------------------------------------------------------------------


@pytest.mark.es
def test_create_index_stamps_model_and_default_type(es, index_name, manifest):
    meta = create_index(es, index_name, manifest, extra_mappings={"url": {"type": "keyword"}})
    # XLIR's default (int8_hnsw, m 32, ef_construction 200, oversample 3), as the server has it
    assert {k: meta["index_options"].get(k) for k in DEFAULT_INDEX_OPTIONS} == DEFAULT_INDEX_OPTIONS
    live = es.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert live["_meta"]["xlir"]["sha256"] == manifest.sha256
    assert live["_meta"]["xlir"]["index_options"]["type"] == DEFAULT_INDEX_OPTIONS["type"]
    assert live["properties"]["embedding"]["dims"] == 16
    assert live["properties"]["url"] == {"type": "keyword"}
    assert check_index(es, index_name, manifest)["model"] == manifest.model_name
    with pytest.raises(InputError, match="already exists"):
        create_index(es, index_name, manifest)


@pytest.mark.es
@pytest.mark.parametrize(
    "spec",
    ["hnsw,m=8,ef_construction=50", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "bbq_flat"],
)
def test_index_types(es, index_name, manifest64, spec):
    meta = create_index(es, index_name, manifest64, spec)
    wanted = parse_index_options(spec)
    assert meta["index_options"]["type"] == wanted["type"]
    for key in ("m", "ef_construction"):
        if key in wanted:
            assert meta["index_options"][key] == wanted[key]
    assert index_meta(es, index_name)["index_options"]["type"] == wanted["type"]


@pytest.mark.es
def test_other_model_is_refused(es, index_name, manifest, manifest64):
    create_index(es, index_name, manifest)
    other_sha = dataclasses.replace(manifest, sha256="f" * 64, source_model="other/model")
    with pytest.raises(ModelMismatch) as info:
        check_index(es, index_name, other_sha)
    message = str(info.value)
    assert manifest.sha256 in message and "f" * 64 in message
    assert manifest.model_name in message and "other/model" in message
    with pytest.raises(ModelMismatch, match="dims 16 vs 64"):
        check_index(es, index_name, manifest64)


@pytest.mark.es
def test_missing_and_foreign_indexes(es, index_name, manifest):
    with pytest.raises(InputError, match="does not exist"):
        check_index(es, index_name, manifest)
    es.indices.create(index=index_name, mappings={"properties": {"text": {"type": "text"}}})
    with pytest.raises(InputError, match="not created by xlir"):
        check_index(es, index_name, manifest)


@pytest.mark.es
def test_ensure_index_and_delete(es, index_name, manifest):
    assert not index_exists(es, index_name)
    first = ensure_index(es, index_name, manifest, "hnsw")
    again = ensure_index(es, index_name, manifest)
    assert first["index_options"]["type"] == again["index_options"]["type"] == "hnsw"
    with pytest.raises(InputError, match="already exists with index type 'hnsw'"):
        ensure_index(es, index_name, manifest, "flat")
    assert delete_index(es, index_name) and not index_exists(es, index_name)
    assert not delete_index(es, index_name)
