"""A local two-node cluster: `xlir es start --nodes 2`, indexes with a replica, a node lost.

The cluster has its own node file (`XLIR_CACHE` points at a temporary dir), so the node the
other tests share is never touched; `xlir es stop` stops both nodes at the end.
"""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from tests.onnx_fixtures import build_onnx_model, words_of
from tests.test_faults import vector_docs
from xlir_plugin.cli import main
from xlir_plugin.connection import EsSettings, connect, local_node_file
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.index import create_index
from xlir_plugin.ingest import ingest
from xlir_plugin.search import search_vector
from xlir_plugin.testing.cluster import kill
from xlir_plugin.testing.elasticsearch import NodeInfo, install_root

pytestmark = [pytest.mark.es, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XLIR_ES_HOME", str(install_root()))  # the installed distribution, reused
        env.setenv("XLIR_CACHE", str(tmp_path_factory.mktemp("cluster-cache")))
        try:
            assert main(["es", "start", "--nodes", "2", "--heap", "512m", "--json"]) == 0
            yield NodeInfo.load(local_node_file())
        finally:
            main(["es", "stop"])


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> OnnxEncoder:
    path = tmp_path_factory.mktemp("cluster-model")
    build_onnx_model(path, words_of(["query: passage: document"]), dim=16)
    return OnnxEncoder(path, threads=1)


def test_cluster_started_by_the_cli_and_shown_by_status(cluster, capsys):
    capsys.readouterr()
    assert len(cluster.url.split(",")) == 2 and len(cluster.peers) == 1
    assert main(["es", "status", "--json"]) == 0
    out = capsys.readouterr().out
    state = json.loads(out)
    assert cluster.password not in out
    assert state["status"] == "green" and [n["name"] for n in state["nodes"]] == [
        "xlir-1",
        "xlir-2",
    ]
    assert [n["master"] for n in state["nodes"]] == [True, False]
    assert len({n["url"] for n in state["nodes"]}) == 2
    assert main(["es", "status"]) == 0
    text = capsys.readouterr().out
    assert "2 nodes" in text and "xlir-2" in text and cluster.password not in text


def test_failover_search_answers_the_same_and_ingest_continues(cluster, encoder):
    es = connect(EsSettings(url=cluster.url, user=cluster.user, password=cluster.password))
    for name in ("xlir-failover-a", "xlir-failover-b"):  # flat: exact kNN, the same on any copy
        create_index(es, name, encoder.manifest, index_options="flat", replicas=1)
    report = ingest(es, "xlir-failover-a", encoder, vector_docs(1000), progress=False)
    assert (report.indexed, report.failed) == (1000, 0)
    es.cluster.health(wait_for_status="green", timeout="120s")
    queries = np.random.default_rng(3).standard_normal((20, 16)).tolist()

    def answers() -> list[list[str]]:
        return [[h.id for h in search_vector(es, "xlir-failover-a", q, k=10)] for q in queries]

    before = answers()
    errors: list[Exception] = []
    answered = []
    stop = threading.Event()

    def keep_searching():
        while not stop.is_set():
            try:
                answered.append(answers() == before)
            except Exception as exc:  # counted: the test wants none
                errors.append(exc)

    result = {}

    def keep_ingesting():
        docs = vector_docs(3000, prefix="more")
        result["report"] = ingest(
            es,
            "xlir-failover-b",
            encoder,
            docs,
            chunk_size=100,
            initial_backoff=0.2,
            max_retries=8,
            progress=False,
        )

    threads = [threading.Thread(target=keep_searching), threading.Thread(target=keep_ingesting)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    kill(NodeInfo(**cluster.peers[0]))  # the second node dies: no clean shutdown
    threads[1].join(timeout=300)
    time.sleep(1.0)
    stop.set()
    threads[0].join(timeout=120)
    assert not errors, errors[:3]
    assert answered and all(answered), "searches answered differently after losing a node"
    report = result["report"]
    print(f"\nfailover: {len(answered)} search rounds all the same; ingest: {report.summary()}")
    assert (report.indexed, report.failed) == (3000, 0), report.summary()
    es.indices.refresh(index="xlir-failover-b")
    assert es.count(index="xlir-failover-b")["count"] == 3000
    assert answers() == before
    health = es.cluster.health()
    assert health["number_of_nodes"] == 1 and health["status"] == "yellow"
    es.close()
