"""Shared fixtures: a real Elasticsearch node for the whole session, and a real OpenSearch
node for the tests that ask for one (never a mock)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from xlir_plugin.connection import EsSettings, connect
from xlir_plugin.testing import elasticsearch as node
from xlir_plugin.testing import opensearch as opensearch_node

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def es_settings() -> Iterator[EsSettings]:
    """`XLIR_ES_URL` when set, else a node started here; a failure to start fails the tests."""
    if os.environ.get("XLIR_ES_URL"):
        yield EsSettings.from_env()
        return
    info = node.start()
    yield EsSettings(url=info.url, user=info.user, password=info.password)
    node.stop(info)


@pytest.fixture(scope="session")
def es(es_settings: EsSettings):
    client = connect(es_settings)
    yield client
    client.close()


@pytest.fixture(scope="session")
def opensearch_settings() -> Iterator[EsSettings]:
    """`XLIR_OS_URL` when set (a running node, kept), else a node started here on first use
    (heap 512m: the test indexes are small; `XLIR_OS_HEAP` for the scale benchmark's million)
    and stopped at the end."""
    url = os.environ.get("XLIR_OS_URL")
    info = None if url else opensearch_node.start(heap=os.environ.get("XLIR_OS_HEAP", "512m"))
    yield EsSettings(url=url or info.url, engine="opensearch")
    if info:
        node.stop(info)


@pytest.fixture(scope="session")
def opensearch(opensearch_settings: EsSettings):
    with contextlib.closing(connect(opensearch_settings)) as client:
        yield client


@pytest.fixture
def index_name(es) -> Iterator[str]:
    """A fresh index name, deleted after the test."""
    name = f"xlir-test-{uuid.uuid4().hex[:10]}"
    yield name
    es.options(ignore_status=404).indices.delete(index=name)


@pytest.fixture(scope="session")
def xquad_dir() -> Path:
    from xlir_plugin.paths import data_dir

    path = data_dir() / "xquad-r"
    assert path.is_dir(), f"XQuAD-R not found at {path}: set XLIR_DATA to the shared data dir"
    return path


#: a write pool of one thread and a queue of one: concurrent shard writes meet 429s
TINY_WRITE_POOL = {"thread_pool.write.size": "1", "thread_pool.write.queue_size": "1"}


@dataclass
class SpareNode:
    """A node of the tests' own that they may kill and restart (never the session's `es`)."""

    info: node.NodeInfo

    def settings(self, **overrides) -> EsSettings:
        found = {
            "url": self.info.url,
            "user": self.info.user,
            "password": self.info.password,
            "ca_certs": self.info.ca_certs,
        }
        return EsSettings(**(found | overrides))


@pytest.fixture(scope="session")
def spare_node() -> Iterator[SpareNode]:
    """A second local node serving HTTPS (a CA made by the project) with a tiny write pool,
    for the fault, backpressure and TLS tests; started on first use, stopped at the end."""
    reuse = os.environ.get("XLIR_SPARE_NODE")  # node.json of a running node: used, kept
    if reuse:
        yield SpareNode(node.NodeInfo.load(Path(reuse)))
        return
    spare = SpareNode(node.start(heap="512m", tls=True, settings=TINY_WRITE_POOL))
    yield spare
    node.stop(spare.info)
