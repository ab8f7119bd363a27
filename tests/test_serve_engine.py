"""`/v1/search` against the tests' Elasticsearch node: the hits `search.py` and `xlir search`
give for the same query, in every mode; `/ready` with an engine; the README's search example.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.conftest import REPO_ROOT
from tests.onnx_fixtures import xquad_sentences
from tests.serve_process import start_xlir
from tests.test_serve import on_port, readme_block
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.index import delete_index
from xlir_plugin.ingest import ingest
from xlir_plugin.models import resolve_served_model
from xlir_plugin.search import search

pytestmark = pytest.mark.es

QUERY = "Wer hat die Normandie erobert?"
CASES = [
    {"mode": "multilingual"},
    {"mode": "cross", "lang": "de", "targets": ["en", "es"], "k": 5},
    {"mode": "cross", "targets": "en,es", "k": 3},
    {"mode": "mono", "lang": "de", "k": 4},
    {"mode": "multilingual", "hybrid": True, "k": 5},
    {"mode": "multilingual", "filter": {"term": {"lang": "es"}}, "k": 3},
]


@pytest.fixture(scope="module")
def encoder() -> OnnxEncoder:
    return OnnxEncoder(resolve_served_model("default"))


@pytest.fixture(scope="module")
def small_index(es, encoder, xquad_dir):
    """45 XQuAD-R sentences (de, en, es) indexed with the default model."""
    name = f"xlir-test-serve-{uuid.uuid4().hex[:10]}"
    docs = xquad_sentences(xquad_dir.parent, langs=("de", "en", "es"), per_lang=15)
    report = ingest(es, name, encoder, docs, progress=False)
    assert report.indexed == len(docs)
    yield name
    delete_index(es, name)


@pytest.fixture(scope="module")
def engine_env(es_settings) -> dict[str, str]:
    found = {"url": es_settings.url, "user": es_settings.user, "password": es_settings.password}
    found["ca_certs"] = es_settings.ca_certs
    return {f"XLIR_ES_{k.upper()}": v for k, v in found.items() if v}


@pytest.fixture(scope="module")
def server(tmp_path_factory, engine_env, small_index):
    server = start_xlir(tmp_path_factory.mktemp("serve-engine"), env=engine_env)
    yield server
    assert server.stop() == 0, server.output()


def post_search(server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/search", json=body, timeout=60)


def test_ready_says_the_engine_answers(server):
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200 and "reachable" in ready.json()["engine"], ready.text


@pytest.mark.parametrize("case", CASES, ids=[json.dumps(c) for c in CASES])
def test_search_returns_what_search_py_returns(server, es, encoder, small_index, case):
    response = post_search(server, {"index": small_index, "text": QUERY, **case})
    assert response.status_code == 200, response.text
    got = response.json()["hits"]
    want = search(es, small_index, encoder, QUERY, **case)
    assert [h["id"] for h in got] == [h.id for h in want]
    assert [h["score"] for h in got] == pytest.approx([h.score for h in want], abs=1e-5)
    assert got == [h.as_dict() | {"score": g["score"]} for h, g in zip(want, got, strict=True)]


def test_search_returns_what_xlir_search_prints(server, engine_env, small_index):
    command = [sys.executable, "-m", "xlir_plugin.cli", "search", QUERY, "--index", small_index]
    flags = ["--mode", "cross", "--lang", "de", "--target", "en,es", "-k", "5", "--json"]
    env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin", **engine_env}
    done = subprocess.run(command + flags, env=env, capture_output=True, text=True, check=True)
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    got = post_search(server, {"index": small_index, "text": QUERY, **CASES[1]}).json()["hits"]
    assert [h["id"] for h in got] == [h["id"] for h in printed] and len(got) == 5


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"mode": "cross"}, 400, "invalid_search"),  # cross needs targets
        ({"mode": "galactic"}, 400, "invalid_search"),
        ({"k": "ten"}, 400, "invalid_k"),
        ({"rescore": "lots"}, 400, "invalid_rescore"),
        ({"num_candidates": 20_000}, 400, "invalid_search"),
        ({"text": ""}, 400, "invalid_text"),
        ({"index": "xlir-test-no-such-index"}, 422, "index_not_usable"),
        ({"model": "other-model"}, 404, "model_not_found"),
    ],
)
def test_bad_searches_get_their_status(server, small_index, body, status, code):
    response = post_search(server, {"index": small_index, "text": QUERY} | body)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert post_search(server, {"index": small_index, "text": QUERY}).status_code == 200


def test_readme_search_example_runs_as_written(server, small_index):
    block = on_port(readme_block("bash", "/v1/search"), server)
    block = block.replace('"index": "docs"', f'"index": "{small_index}"')
    outputs = []
    for line in filter(None, block.splitlines()):
        done = subprocess.run(line, shell=True, capture_output=True, text=True, check=True)
        outputs.append(json.loads(done.stdout))
    hits, ready = outputs
    assert len(hits["hits"]) == 5 and {h["lang"] for h in hits["hits"]} <= {"en", "es"}
    assert ready["status"] == "ready"
