"""`xlir serve` as a client sees it: a real server in a subprocess, the official `openai`
client, curl as the README writes it, bad input, keys, metrics, load, SIGTERM.

One server (the default model, two API keys, no engine) serves the module; the queue and
shutdown tests start their own.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.serve_process import free_port, start, start_xlir
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.models import resolve_served_model
from xlir_plugin.serve.auth import KeyCheck, load_keys

openai = pytest.importorskip("openai")

FILE_KEY = "sk-file-3c1d9e"
ENV_KEY = "sk-env-77a0b2"
SECRET_TEXT = "a sentence that must never reach the log 5f2e"
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
QUERIES = ["Wer hat die Normandie erobert?", "Who conquered Normandy?", "¿Quién conquistó?"]
PASSAGES = [
    "The Normans were the people who in the 10th and 11th centuries gave their name to "
    "Normandy, a region in France.",
    "Die Normannen eroberten 1066 England.",
    "東京は日本の首都です。",
]


@pytest.fixture(scope="module")
def encoder() -> OnnxEncoder:
    return OnnxEncoder(resolve_served_model("default"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    (tmp / "keys.txt").write_text(f"# the tests' key\n{FILE_KEY}\n\n")
    env = {"XLIR_API_KEYS": f"{ENV_KEY}, sk-other"}
    server = start_xlir(tmp, "--api-key-file", str(tmp / "keys.txt"), "--no-engine", env=env)
    print(f"xlir serve answered /health {server.startup_s:.1f} s after it was started")
    assert server.startup_s < 20
    yield server
    assert server.stop() == 0, server.output()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=FILE_KEY, max_retries=0)


def post(server, path: str, body, key: str | None = ENV_KEY, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(f"{server.url}{path}", content=data, headers=headers, timeout=60, **kwargs)


def as_floats(embedding: list[float] | str) -> np.ndarray:
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# -- the openai client ------------------------------------------------------------------------


def test_openai_client_gets_the_encoders_vectors(client, encoder):
    for kind, texts in (("query", QUERIES), ("passage", PASSAGES)):
        want = encoder.encode(texts, kind)
        tokens = sum(len(e.ids) for e in encoder.tokenize(texts, kind))
        # unset: the client asks for base64 and decodes it; asked for, it hands the string on
        for fmt in (openai.NOT_GIVEN, "base64", "float"):
            extra = {"input_type": kind} if kind == "query" else {}
            result = client.embeddings.create(
                model="default", input=texts, encoding_format=fmt, extra_body=extra
            )
            got = np.array([as_floats(item.embedding) for item in result.data])
            assert [item.index for item in result.data] == list(range(len(texts)))
            assert cosines(got, want).min() >= 0.9999
            assert result.usage.prompt_tokens == result.usage.total_tokens == tokens
            assert result.model == encoder.model_name


def test_a_single_string_and_the_models_own_name(client, encoder):
    result = client.embeddings.create(model=encoder.model_name, input=PASSAGES[0])
    assert len(result.data) == 1 and len(result.data[0].embedding) == encoder.dim
    assert [m.id for m in client.models.list()] == [encoder.model_name]


def test_base64_is_little_endian_float32(server, encoder):
    body = {"input": PASSAGES[1], "encoding_format": "base64"}
    row = post(server, "/v1/embeddings", body).json()["data"][0]["embedding"]
    vector = np.frombuffer(base64.b64decode(row), dtype="<f4")
    assert cosines(vector[None], encoder.encode_passages(PASSAGES[1:2]))[0] >= 0.9999


# -- batching under load ----------------------------------------------------------------------


def test_a_requests_vectors_are_the_same_alone_and_under_load(server, client):
    mine = [*QUERIES, *PASSAGES]
    alone = np.array(
        [d.embedding for d in client.embeddings.create(model="default", input=mine).data]
    )
    others = [PASSAGES * 3, QUERIES, [PASSAGES[0][:40]], PASSAGES[::-1] * 5, ["kurz"]]

    def one(i: int) -> tuple[bool, np.ndarray]:
        texts = mine if i % 3 == 0 else others[i % len(others)]
        data = client.embeddings.create(model="default", input=texts).data
        return i % 3 == 0, np.array([d.embedding for d in data])

    before = batch_counts(server)
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(48)))
    loaded = [vectors for is_mine, vectors in results if is_mine]
    assert len(loaded) == 16
    for vectors in loaded:
        assert cosines(vectors, alone).min() >= 0.9999999
        assert np.abs(vectors - alone).max() < 1e-6
    requests, batches = (a - b for a, b in zip(batch_counts(server), before, strict=True))
    assert requests == 48 and batches < requests  # requests of different clients shared batches


def batch_counts(server) -> tuple[float, float]:
    """(requests encoded, encoder batches run) from /metrics."""
    page = httpx.get(f"{server.url}/metrics").text
    total = float(re.search(r"^xlir_batch_requests_sum (\S+)", page, re.M).group(1))
    count = float(re.search(r"^xlir_batch_requests_count (\S+)", page, re.M).group(1))
    return total, count


# -- bad input --------------------------------------------------------------------------------

BAD = {
    "empty list": ({"input": []}, 400, "invalid_input"),
    "non-string item": ({"input": ["ok", 3]}, 400, "invalid_input"),
    "token ids": ({"input": [[1, 2, 3]]}, 400, "invalid_input"),
    "empty text": ({"input": ["ok", "  "]}, 400, "invalid_input"),
    "no input": ({"model": "default"}, 400, "invalid_input"),
    "10k items": ({"input": ["word"] * 10_000}, 413, "request_too_large"),
    "a 1 MB text": ({"input": "x" * 1_000_000}, 413, "request_too_large"),
    "wrong JSON": (b'{"input": ["unterminated', 400, "invalid_json"),
    "not an object": (b'["a", "b"]', 400, "invalid_json"),
    "unknown model": ({"input": "x", "model": "text-embedding-3-small"}, 404, "model_not_found"),
    "bad encoding_format": ({"input": "x", "encoding_format": "int8"}, 400, None),
    "bad input_type": ({"input": "x", "input_type": "document"}, 400, None),
    "other dimensions": ({"input": "x", "dimensions": 256}, 400, None),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gets_its_status_and_a_json_error(server, case):
    body, status, code = BAD[case]
    response = post(server, "/v1/embeddings", body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"]
    assert code is None or error["code"] == code
    assert post(server, "/v1/embeddings", {"input": "still up"}).status_code == 200


def test_the_openai_client_raises_its_own_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="default", input=[])


def test_wrong_routes_and_methods_answer_json(server):
    for method, path, status in (("GET", "/v1/nothing", 404), ("GET", "/v1/embeddings", 405)):
        response = httpx.request(method, f"{server.url}{path}")
        assert response.status_code == status and response.json()["error"]["message"]


# -- keys, logging ----------------------------------------------------------------------------


def test_keys_from_the_file_and_the_environment(server):
    body = {"input": SECRET_TEXT}
    for key in (FILE_KEY, ENV_KEY, "sk-other"):
        assert post(server, "/v1/embeddings", body, key=key).status_code == 200
    for key, code in ((None, "missing_api_key"), ("sk-wrong", "invalid_api_key")):
        response = post(server, "/v1/embeddings", body, key=key)
        assert response.status_code == 401 and response.json()["error"]["code"] == code
    assert httpx.get(f"{server.url}/v1/models").status_code == 401
    for open_path in ("/health", "/metrics"):
        assert httpx.get(f"{server.url}{open_path}").status_code == 200
    log = server.output()
    assert "2 key(s)" not in log and "3 key(s)" in log  # counted; never shown
    for secret in (FILE_KEY, ENV_KEY, "sk-other", "sk-wrong", SECRET_TEXT):
        assert secret not in log


def test_key_check_alone(tmp_path):
    assert not KeyCheck([]).enabled
    KeyCheck([]).check(None)  # no keys: no check
    (tmp_path / "k").write_text("a\n# b\n")
    assert load_keys(tmp_path / "k", {"XLIR_API_KEYS": " c ,,d"}) == ["a", "c", "d"]
    assert "a" not in repr(KeyCheck(["a"]))


# -- probes and metrics -----------------------------------------------------------------------


def test_health_ready_and_metrics(server):
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 503 and "no search engine" in ready.json()["engine"]
    search = post(server, "/v1/search", {"text": "x", "index": "docs"})
    assert search.status_code == 503 and search.json()["error"]["code"] == "engine_not_configured"
    page = httpx.get(f"{server.url}/metrics").text
    for name in (
        "xlir_requests_total",
        "xlir_request_errors_total",
        "xlir_request_latency_seconds_bucket",
        "xlir_batch_texts_bucket",
        "xlir_batch_tokens_bucket",
        "xlir_queue_texts",
        "xlir_queue_rejected_total",
    ):
        assert f"\n{name}" in page, name
    assert re.search(r'xlir_requests_total\{route="/v1/embeddings",status="200"\} [1-9]', page)


# -- the README -------------------------------------------------------------------------------


def readme_block(lang: str, marker: str) -> str:
    blocks = [b for b in re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S) if marker in b]
    assert len(blocks) == 1, f"{len(blocks)} README {lang} blocks hold {marker!r}"
    return blocks[0]


def on_port(text: str, server) -> str:
    return text.replace("http://127.0.0.1:8000", server.url)


def test_readme_curl_examples_run_as_written(server, encoder):
    block = readme_block("bash", "curl -s http://127.0.0.1:8000/v1/embeddings")
    env = {"XLIR_API_KEY": ENV_KEY, "PATH": "/usr/bin:/bin"}
    outputs = []
    for line in filter(None, on_port(block, server).splitlines()):
        done = subprocess.run(line, shell=True, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout))
    query, passages, models, health = outputs
    want = encoder.encode_queries([QUERIES[0]])[0]
    assert np.dot(query["data"][0]["embedding"], want) >= 0.9999
    assert len(passages["data"]) == 2 and isinstance(passages["data"][0]["embedding"], str)
    assert models["data"][0]["id"] == encoder.model_name and health == {"status": "ok"}


def test_readme_openai_example_runs_as_written(server, tmp_path):
    (tmp_path / "example.py").write_text(on_port(readme_block("python", "OpenAI("), server))
    done = subprocess.run(
        [str(REPO_ROOT / ".venv/bin/python"), "example.py"],
        cwd=tmp_path,
        env={"XLIR_API_KEY": FILE_KEY},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    count, dims, tokens = done.stdout.split()
    assert (count, dims) == ("2", "384") and int(tokens) > 10


def test_readme_serve_command_runs_as_written(tmp_path):
    """The README's `xlir serve` line in a directory laid out as it assumes (`.venv`, a
    `keys.txt`), on a free port: loopback only, the key required, a clean SIGTERM stop."""
    line = readme_block("bash", "xlir serve --model default").strip().split("  #")[0]
    port = free_port()
    command = [str(port) if word == "8000" else word for word in shlex.split(line)]
    (tmp_path / ".venv").symlink_to(REPO_ROOT / ".venv")
    (tmp_path / "keys.txt").write_text(FILE_KEY + "\n")
    server = start(command, port, tmp_path / "serve.log", {"XLIR_API_KEYS": ""}, cwd=tmp_path)
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=FILE_KEY, max_retries=0)
        assert len(client.embeddings.create(model="default", input="ok").data) == 1
        assert post(server, "/v1/embeddings", {"input": "ok"}, key=None).status_code == 401
        assert "127.0.0.1" in server.output() and "1 key(s)" in server.output()
    finally:
        assert server.stop() == 0, server.output()


def test_loopback_is_the_default_host():
    from xlir_plugin.cli import build_parser

    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


# -- backpressure and shutdown (servers of their own) -----------------------------------------


@pytest.mark.slow
def test_a_full_queue_answers_429_with_retry_after_and_recovers(tmp_path):
    server = start_xlir(
        tmp_path, "--no-engine", "--max-queue-texts", "8", "--max-request-texts", "8"
    )
    try:
        body = {"input": [PASSAGES[0] * 8] * 8}
        with ThreadPoolExecutor(12) as pool:
            responses = list(pool.map(lambda _: post(server, "/v1/embeddings", body), range(12)))
        statuses = sorted(r.status_code for r in responses)
        assert set(statuses) == {200, 429}, statuses
        refused = next(r for r in responses if r.status_code == 429)
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert post(server, "/v1/embeddings", body).status_code == 200
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_sigterm_answers_requests_in_flight_then_exits_0(tmp_path):
    server = start_xlir(tmp_path, "--no-engine")
    body = {"input": [PASSAGES[0] * 6] * 4}
    answered: list[tuple[int, float]] = []

    def one() -> None:
        response = post(server, "/v1/embeddings", body)
        answered.append((response.status_code, time.monotonic()))

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # all sent; the first batches are running
    stopped_at = time.monotonic()
    code = server.stop()
    for thread in threads:
        thread.join()
    assert code == 0, server.output()
    assert [status for status, _ in answered] == [200] * 8
    assert max(t for _, t in answered) > stopped_at  # some were answered after SIGTERM
