"""The node is real, secured, and failures to reach it read clearly."""

from __future__ import annotations

import pytest

from xlir_plugin.connection import EsSettings, connect
from xlir_plugin.errors import ConnectionFailed

pytestmark = pytest.mark.es


def test_knn_on_a_real_node_finds_the_nearest_document(es, index_name):
    es.indices.create(
        index=index_name,
        mappings={"properties": {"v": {"type": "dense_vector", "dims": 3, "similarity": "cosine"}}},
    )
    vectors = {"east": [1, 0, 0], "north": [0, 1, 0], "up": [0, 0, 1]}
    for doc_id, vector in vectors.items():
        es.index(index=index_name, id=doc_id, document={"v": vector})
    es.indices.refresh(index=index_name)
    hits = es.search(
        index=index_name,
        knn={"field": "v", "query_vector": [0.1, 0.9, 0.2], "k": 1, "num_candidates": 10},
    )["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["north"]
    versions = {n["version"] for n in es.nodes.info()["nodes"].values()}
    assert all(v.startswith("9.") for v in versions)  # a real 9.x server answered


def test_security_is_on(es_settings):
    anonymous = EsSettings(url=es_settings.url)
    with pytest.raises(ConnectionFailed, match="authentication"):
        connect(anonymous)


def test_wrong_password_names_authentication(es_settings):
    wrong = EsSettings(url=es_settings.url, user="elastic", password="not-the-password")
    with pytest.raises(ConnectionFailed, match="rejected authentication with user 'elastic'"):
        connect(wrong)


def test_unreachable_url_is_named():
    url = "http://127.0.0.1:9"  # discard port: nothing listens there
    with pytest.raises(
        ConnectionFailed, match=r"cannot reach Elasticsearch at http://127\.0\.0\.1:9"
    ):
        connect(EsSettings(url=url, request_timeout=2))


def test_settings_repr_hides_secrets():
    settings = EsSettings(url="http://x", user="u", password="hunter2", api_key="abc")
    assert "hunter2" not in repr(settings) and "abc" not in repr(settings)
