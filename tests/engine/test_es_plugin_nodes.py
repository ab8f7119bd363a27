"""The in-engine path from the command line, across a node restart and on a two-node cluster.

`xlir es install-model`, `xlir index --in-engine`, `xlir search --in-engine` on the session's
node; the plugin and an installed model survive a restart of `spare_node`; a cluster from
`xlir es start --nodes 2` has the plugin on both nodes and `install-model` reaches both.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.engine.conftest import sources
from xlir_plugin.cli import main
from xlir_plugin.connection import EsSettings, connect, local_node_file
from xlir_plugin.engine import engine_ingest, engine_search, models
from xlir_plugin.engine import engine_model as engine_model_of
from xlir_plugin.engine_install import install_model, remove_model
from xlir_plugin.index import delete_index
from xlir_plugin.testing.cluster import restart
from xlir_plugin.testing.elasticsearch import NodeInfo, install_root, stop

pytestmark = [pytest.mark.es]


def as_env(monkeypatch, settings: EsSettings) -> None:
    for key in ("url", "user", "password", "ca_certs"):
        value = getattr(settings, key)
        if value:
            monkeypatch.setenv(f"XLIR_ES_{key.upper()}", value)


@pytest.fixture
def docs_file(tmp_path, sentences):
    path = tmp_path / "docs.jsonl"
    docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences[::5]]
    path.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in docs) + "\n")
    return path, docs


def test_es_plugin_cli_install_model_index_and_search_in_engine(
    es, es_settings, synthetic_export, docs_file, tmp_path, monkeypatch, capsys
):
    as_env(monkeypatch, es_settings)
    monkeypatch.setenv("XLIR_ES_HOME", str(tmp_path / "no-home"))  # running nodes only
    name, index = (f"xlir-test-cli-{uuid.uuid4().hex[:8]}" for _ in range(2))
    path, docs = docs_file
    try:
        install = ["es", "install-model", "--model", str(synthetic_export), "--name", name]
        assert main([*install, "--json"]) == 0
        installed = json.loads(capsys.readouterr().out)["installed"]
        assert len(installed) == 1 and installed[0].endswith(f"/xlir/models/{name}")
        index_cmd = ["index", "--in-engine", "--model", name, "--index", index]
        assert main([*index_cmd, "--input", str(path), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["indexed"], report["failed"]) == (len(docs), 0)
        assert len(sources(es, index)[docs[0]["id"]]["embedding"]) == 48
        question = docs[3]["text"]
        search = ["search", "--index", index, "--mode", "cross", "--lang", "de", "--target", "en"]
        assert main([*search, "--in-engine", "--model", name, "--json", question]) == 0
        in_engine = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert main([*search, "--model", str(synthetic_export), "--json", question]) == 0
        client = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [h["id"] for h in in_engine] == [h["id"] for h in client] and len(client) == 10
        assert {h["lang"] for h in in_engine} == {"en"}

        assert main([*search, "--in-engine", "--model", "nope", question]) == 2
        err = capsys.readouterr().err
        assert "no model 'nope' is installed" in err and "xlir es install-model" in err, err
        assert main([*search, "--in-engine", "--hybrid", "--model", name, question]) == 2
        err = capsys.readouterr().err
        assert "--hybrid" in err and "--in-engine" in err, err
        broken = tmp_path / "broken"
        broken.mkdir()
        for file in ("model.onnx", "xlir.json"):
            (broken / file).write_bytes((synthetic_export / file).read_bytes())
        assert main(["es", "install-model", "--model", str(broken), "--name", "x"]) == 2
        assert "tokenizer.json missing" in capsys.readouterr().err
        assert main(["es", "install-model", "--model", str(synthetic_export), "--name", ".x"]) == 2
        assert "--name .x" in capsys.readouterr().err
    finally:
        delete_index(es, index)
        remove_model(name, es_settings, future_nodes=False)
    out = capsys.readouterr()
    assert es_settings.password not in out.out + out.err


@pytest.mark.slow
def test_es_plugin_survives_a_node_restart(spare_node, synthetic_export, sentences):
    settings = spare_node.settings()
    name = f"xlir-test-restart-{uuid.uuid4().hex[:8]}"
    index = "xlir-test-restart"
    install_model(synthetic_export, name, settings, future_nodes=False)
    docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences[::9]]
    es = connect(settings)
    model = engine_model_of(es, name)
    delete_index(es, index)
    engine_ingest(es, index, model, docs[:60], progress=False)
    before = [h.id for h in engine_search(es, index, model, docs[0]["text"])]
    es.close()

    stop(spare_node.info, keep_data=True)
    spare_node.info = restart(spare_node.info)
    es = connect(spare_node.settings())
    try:
        assert any(p["component"] == "xlir" for p in es.cat.plugins(format="json"))
        model = engine_model_of(es, name)  # still installed in the node's config
        assert [h.id for h in engine_search(es, index, model, docs[0]["text"])] == before
        report = engine_ingest(es, index, model, docs[60:], progress=False)  # default pipeline
        assert (report.indexed, report.failed) == (len(docs) - 60, 0)
        assert es.count(index=index, query={"exists": {"field": "embedding"}})["count"] == len(docs)
        assert es.cluster.health(index=index)["status"] == "green"
    finally:
        delete_index(es, index)
        es.close()
        remove_model(name, spare_node.settings(), future_nodes=False)


@pytest.mark.slow
def test_es_plugin_on_every_node_of_a_local_cluster(
    synthetic_export, sentences, tmp_path_factory, monkeypatch, capsys
):
    monkeypatch.setenv("XLIR_ES_HOME", str(install_root()))  # the installed distribution
    monkeypatch.setenv("XLIR_CACHE", str(tmp_path_factory.mktemp("engine-cluster")))
    for key in ("URL", "USER", "PASSWORD", "CA_CERTS", "API_KEY"):
        monkeypatch.delenv(f"XLIR_ES_{key}", raising=False)
    name = f"xlir-test-cluster-{uuid.uuid4().hex[:8]}"
    assert main(["es", "start", "--nodes", "2", "--heap", "512m", "--json"]) == 0
    try:
        info = NodeInfo.load(local_node_file())
        urls = info.url.split(",")
        assert len(urls) == 2
        assert main(["es", "install-model", "--model", str(synthetic_export), "--name", name]) == 0
        out = capsys.readouterr().out
        assert out.count(f"/xlir/models/{name}") == 3, out  # two nodes and the home
        per_node = [EsSettings(url=url, user=info.user, password=info.password) for url in urls]
        for settings in per_node:
            es = connect(settings)
            assert name in [m["name"] for m in models(es)["models"]], settings.url
            es.close()
        es = connect(per_node[0])
        docs = [{"id": s["id"], "lang": s["lang"], "text": s["text"]} for s in sentences[::10]]
        report = engine_ingest(es, "xlir-test-cluster", engine_model_of(es, name), docs)
        assert report.failed == 0
        es.close()
        answers = []
        for settings in per_node:  # each node computes the query vector itself
            es = connect(settings)
            hits = engine_search(es, "xlir-test-cluster", engine_model_of(es, name), "Berlin")
            answers.append([h.id for h in hits])
            es.close()
        assert answers[0] == answers[1] and len(answers[0]) == 10
    finally:
        main(["es", "stop"])
        remove_model(name, None, future_nodes=True)
