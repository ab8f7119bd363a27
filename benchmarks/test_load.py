"""Group 7: concurrent load: 8 clients searching for a fixed time, an ingest beside them.

The 8 client threads share one `OnnxEncoder` (the default int8 model) and one Elasticsearch
client, as a web server would: each encodes a real question and runs kNN over the XQuAD-R
pool (`search`, the path of `xlir search`). Meanwhile one ingest writes precomputed vectors
into another index. 60 s (`XLIR_LOAD_SECONDS`); 3 s under --benchmark-disable. Recorded:
p50/p95/p99 per search, searches/s, errors (must be 0), and the Python threads, OS threads
and TCP connections to Elasticsearch before and after (none may leak; counted after a 1 s
warm-up round, since thread pools that start once are not leaks).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from urllib.parse import urlsplit

import numpy as np
import psutil
import pytest

from benchmarks.conftest import pool_docs
from xlir_plugin.connection import connect
from xlir_plugin.index import delete_index
from xlir_plugin.ingest import ingest
from xlir_plugin.search import search

GROUP = "7. concurrent load: 8 clients (encode + kNN) for {seconds:.0f} s, an ingest beside them"
CLIENTS = 8


def es_connections(url: str) -> int:
    """This process's established TCP connections to the node at `url`."""
    port = urlsplit(url.split(",")[0]).port
    return sum(
        1
        for c in psutil.Process().net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


@pytest.fixture(scope="module")
def load_index(es, int8_encoder, pool):  # noqa: F811
    name = f"xlir-bench-load-{uuid.uuid4().hex[:6]}"
    report = ingest(es, name, int8_encoder, pool_docs(pool), progress=False)
    assert report.failed == 0, report.summary()
    yield name
    delete_index(es, name)


def test_load_8_clients_search_while_ingesting(
    benchmark,
    es,
    es_settings,
    int8_encoder,
    pool,
    load_index,
    questions,
    quick,  # noqa: F811
):
    seconds = float(os.environ.get("XLIR_LOAD_SECONDS") or (3 if quick else 60))
    benchmark.group = GROUP.format(seconds=seconds)
    sentences, vectors = pool
    ingest_index = f"xlir-bench-load-ingest-{uuid.uuid4().hex[:6]}"
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []
    ingested = {}

    def run(seconds: float = seconds):
        client = connect(es_settings)  # shared by every thread, closed at the end
        deadline = time.monotonic() + seconds

        def searcher(i: int) -> None:
            cycle = itertools.cycle(questions[i::CLIENTS])
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    hits = search(client, load_index, int8_encoder, next(cycle), k=10)
                    assert len(hits) == 10
                except BaseException as exc:  # counted: the benchmark asserts none
                    errors.append(exc)
                latencies[i].append(time.perf_counter() - started)

        def ingester() -> None:
            def docs():  # the pool's vectors again, under other ids, until time is up
                for n in itertools.count():
                    if time.monotonic() >= deadline:
                        return
                    s, v = sentences[n % len(sentences)], vectors[n % len(sentences)]
                    yield {"id": f"{n}", "lang": s.lang, "text": s.text, "embedding": v.tolist()}

            try:
                ingested["report"] = ingest(
                    client, ingest_index, int8_encoder, docs(), chunk_size=200, progress=False
                )
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=searcher, args=(i,)) for i in range(CLIENTS)]
        workers.append(threading.Thread(target=ingester))
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        connections_during = es_connections(es_settings.url)
        client.close()
        return connections_during

    try:
        run(1.0)  # warm-up: pools that start once (onnxruntime, BLAS) are not leaks
        for per in latencies:
            per.clear()
        threads_before = threading.active_count()
        os_threads_before = psutil.Process().num_threads()
        connections_before = es_connections(es_settings.url)
        connections_during = benchmark.pedantic(run, rounds=1, iterations=1)
    finally:
        delete_index(es, ingest_index)
    data = np.array([x for per in latencies for x in per]) * 1000
    report = ingested.get("report")
    benchmark.extra_info.update(
        {
            "clients": CLIENTS,
            "seconds": seconds,
            "searches": int(data.size),
            "searches_per_s": round(data.size / seconds, 1),
            "errors": len(errors),
            "p50_ms": round(float(np.percentile(data, 50)), 2),
            "p95_ms": round(float(np.percentile(data, 95)), 2),
            "p99_ms": round(float(np.percentile(data, 99)), 2),
            "ingest_docs": report.indexed if report else 0,
            "ingest_docs_per_s": round(report.docs_per_s, 1) if report else 0,
            "threads_before": threads_before,
            "threads_after": threading.active_count(),
            "os_threads_before": os_threads_before,
            "os_threads_after": psutil.Process().num_threads(),
            "connections_before": connections_before,
            "connections_during": connections_during,
            "connections_after": es_connections(es_settings.url),
        }
    )
    info = benchmark.extra_info
    assert not errors, f"{len(errors)} errors, first: {errors[0]!r}"
    assert report is not None and report.failed == 0 and report.indexed > 0, report
    assert all(per for per in latencies), "a client never completed a search"
    assert info["threads_after"] == threads_before, "Python threads leaked"
    assert info["os_threads_after"] <= os_threads_before, "OS threads leaked"
    assert info["connections_after"] <= connections_before, "connections leaked"
