"""Faults during ingest, on real nodes: a node killed mid-ingest, a full write queue, a cut file.

The kill and backpressure tests use `spare_node` (HTTPS, a write pool of one thread with a
queue of one), never the session's node, which other tests share.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from elasticsearch import helpers

from tests.conftest import REPO_ROOT
from tests.onnx_fixtures import build_onnx_model, words_of
from xlir_plugin.connection import connect
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.index import create_index
from xlir_plugin.ingest import ingest
from xlir_plugin.testing.cluster import kill, restart

pytestmark = pytest.mark.es


def xquad_documents(xquad_dir) -> list[dict]:
    """Every non-blank sentence of every XQuAD-R language (~13k), with stable ids."""
    docs = []
    for path in sorted(xquad_dir.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))["data"]
        for a, article in enumerate(data):
            for p, para in enumerate(article["paragraphs"]):
                for s, text in enumerate(para["sentences"]):
                    if text.strip():
                        docs.append(
                            {
                                "id": f"{path.stem}-{a}-{p}-{s}",
                                "lang": path.stem,
                                "text": text.strip(),
                            }
                        )
    return docs


@pytest.fixture(scope="module")
def xquad_docs(xquad_dir) -> list[dict]:
    return xquad_documents(xquad_dir)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, xquad_docs):
    path = tmp_path_factory.mktemp("fault-model")
    words = words_of(["query:", "passage:", *(d["text"] for d in xquad_docs)])
    build_onnx_model(path, words, dim=16)
    return path


def env_for(settings) -> dict[str, str]:
    """The connection in `XLIR_ES_*` variables: secrets stay off the command line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XLIR_ES_")}
    env.update(
        XLIR_ES_URL=settings.url,
        XLIR_ES_USER=settings.user,
        XLIR_ES_PASSWORD=settings.password,
        XLIR_ES_CA_CERTS=settings.ca_certs,
    )
    return env


def indexed_ops(es, index: str) -> int:
    """Documents indexed so far, refreshed or not (indexing stats, primaries)."""
    stats = es.indices.stats(index=index, metric="indexing")
    return stats["_all"].get("primaries", {}).get("indexing", {}).get("index_total", 0)


@pytest.mark.slow
def test_kill_node_mid_ingest_then_rerun_ends_with_every_document_once(
    spare_node, xquad_docs, model_dir, tmp_path
):
    n = len(xquad_docs)
    docs = tmp_path / "xquad.jsonl"
    docs.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in xquad_docs))
    index = "xlir-kill"
    cmd = [sys.executable, "-m", "xlir_plugin.cli", "index", "--model", str(model_dir)]
    cmd += ["--index", index, "--input", str(docs), "--batch-size", "32", "--json"]
    env = env_for(spare_node.settings())
    es = connect(spare_node.settings(request_timeout=10))
    es.options(ignore_status=404).indices.delete(index=index)

    first = subprocess.Popen(
        cmd, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        done = 0
        while time.monotonic() < deadline and first.poll() is None:
            if es.indices.exists(index=index):
                done = indexed_ops(es, index)
                if done >= n // 4:
                    break
            time.sleep(0.05)
        assert first.poll() is None, f"the ingest ended before the kill: {first.communicate()}"
        kill(spare_node.info)
        es.close()
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 2, (out, err)
    assert "lost Elasticsearch while indexing into 'xlir-kill'" in err, err
    assert "Run the same command again" in err and "none is indexed twice" in err, err
    failures = (tmp_path / "xquad.jsonl.failures.jsonl").read_text()
    for text in (out, err, failures):
        assert spare_node.info.password not in text

    spare_node.info = restart(spare_node.info)
    es = connect(spare_node.settings())
    es.cluster.health(index=index, wait_for_status="green", timeout="120s")
    started = time.perf_counter()
    second = subprocess.run(
        cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    seconds = time.perf_counter() - started
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert (report["read"], report["failed"]) == (n, 0), report
    assert report["indexed"] + report["skipped"] == n
    assert report["skipped"] > 0, "the re-run encoded documents already indexed"
    ids = [hit["_id"] for hit in helpers.scan(es, index=index, _source=False, size=2000)]
    assert len(ids) == es.count(index=index)["count"] == n
    assert set(ids) == {d["id"] for d in xquad_docs}
    print(
        f"\nkilled after {done} of {n} documents; re-run: {report['skipped']} skipped, "
        f"{report['indexed']} indexed, encode {report['encode_seconds']:.2f}s, "
        f"total {seconds:.1f}s"
    )
    es.indices.delete(index=index)
    es.close()


@pytest.fixture(scope="module")
def small_encoder(tmp_path_factory) -> OnnxEncoder:
    path = tmp_path_factory.mktemp("bp-model")
    build_onnx_model(path, words_of(["query: passage: berlin paris madrid"]), dim=16)
    return OnnxEncoder(path, threads=1)


def vector_docs(n: int, dim: int = 16, prefix: str = "doc") -> list[dict]:
    """`n` documents carrying precomputed unit vectors (nothing to encode)."""
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        {"id": f"{prefix}-{i}", "lang": "en", "text": f"document {i}", "embedding": v.tolist()}
        for i, v in enumerate(vectors)
    ]


def test_backpressure_429s_are_retried_with_backoff_and_counted(spare_node, small_encoder):
    """Four writers share a node whose write pool is one thread with a queue of one: bulk
    requests meet 429s, each ingest backs off and retries, and nothing is lost."""
    es = connect(spare_node.settings())
    index = "xlir-bp-many-shards"
    es.options(ignore_status=404).indices.delete(index=index)
    es.indices.put_index_template(  # 8 shards: one bulk request fans out to 8 write tasks
        name="xlir-bp",
        index_patterns=["xlir-bp-*"],
        priority=500,
        template={"settings": {"number_of_shards": 8}},
    )
    writers, n = 4, 1500
    reports = {}

    def write(w: int) -> None:
        reports[w] = ingest(
            es,
            index,
            small_encoder,
            vector_docs(n, prefix=f"w{w}"),
            chunk_size=500,
            max_retries=20,
            initial_backoff=0.05,
            max_backoff=0.5,
            refresh=False,
            progress=False,
        )

    try:
        create_index(es, index, small_encoder.manifest)
        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert len(reports) == writers, "a writer raised (see the captured output)"
        for report in reports.values():
            assert (report.indexed, report.failed) == (n, 0), report.summary()
        retries = sum(r.retries for r in reports.values())
        print(f"\nbackpressure: {[r.summary() for r in reports.values()]}")
        assert retries > 0, "no bulk request met a 429: the write queue was never full"
        retried = next(r for r in reports.values() if r.retries)
        assert retried.retry_wait_seconds > 0
        assert f"{retried.retries} retried" in retried.summary()
        assert retried.as_dict()["retries"] == retried.retries
        es.indices.refresh(index=index)
        assert es.count(index=index)["count"] == writers * n
    finally:
        es.options(ignore_status=404).indices.delete(index=index)
        es.indices.delete_index_template(name="xlir-bp")
        es.close()


def test_fault_truncated_last_line_is_reported_not_fatal(es, index_name, small_encoder, tmp_path):
    docs = vector_docs(5)
    lines = [json.dumps(d) for d in docs]
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:4]) + "\n" + lines[4][: len(lines[4]) // 2])
    failures = tmp_path / "cut.failures.jsonl"
    report = ingest(es, index_name, small_encoder, cut, failures_path=failures, progress=False)
    assert (report.read, report.indexed, report.failed) == (5, 4, 1)
    (failure,) = [json.loads(x) for x in failures.read_text().splitlines()]
    assert failure["line"] == 5 and failure["stage"] == "read" and "bad JSON" in failure["reason"]

    gz = tmp_path / "cut.jsonl.gz"  # a compressed file cut short: the whole lines still count
    whole = gzip.compress(("\n".join(lines) + "\n").encode())
    gz.write_bytes(whole[: len(whole) - 20])
    report = ingest(es, index_name, small_encoder, gz, failures_path=failures, progress=False)
    assert report.failed == 1 and report.indexed >= 1
    (failure,) = [json.loads(x) for x in failures.read_text().splitlines()]
    assert failure["stage"] == "read" and "ends early" in failure["reason"]
