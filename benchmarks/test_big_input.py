"""Group 8: a big JSONL file (1 GiB) streams through ingest with flat memory.

Documents carry precomputed 384-dim `embedding`s (nothing to encode, so the stream is what is
measured), into a `flat` index. The ingest runs in a fresh process; this one samples its RSS
every 0.2 s. Memory is flat when the peak over the second half of the run is no higher than
over the second quarter (after start-up, plus a margin) and stays far below the file's size.
The last line is cut in half: it must be reported as a failure, not stop the run.
1 GiB (`XLIR_BIG_INPUT_MB`) when benchmarking; 16 MiB under --benchmark-disable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import psutil

from tests.onnx_fixtures import build_onnx_model

GROUP = "8. big input: {mb} MiB JSONL with 384-dim embeddings -> flat index, peak RSS"
REPO_ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys
from xlir_plugin.connection import EsSettings, connect
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.ingest import ingest
args = json.loads(sys.argv[1])
es = connect(EsSettings.from_env())
encoder = OnnxEncoder(args["model"], threads=1)  # names the model; nothing is encoded
report = ingest(es, args["index"], encoder, args["input"], failures_path=args["failures"],
                index_options="flat", progress=False, refresh=False)
print(json.dumps(report.as_dict()))
"""


def write_big_jsonl(path: Path, target_bytes: int, dim: int = 384) -> int:
    """Whole documents up to `target_bytes`, then half a line; returns the whole ones."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((256, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    rendered = [json.dumps([float(x) for x in v]) for v in vectors]
    words = ["berlin", "paris", "river", "capital", "music", "science", "history", "year"]
    n = written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < target_bytes:
            text = " ".join(words[(n + i) % len(words)] for i in range(12))
            line = f'{{"id": "big-{n}", "lang": "en", "text": "{text} {n}", "embedding": {rendered[n % 256]}}}\n'
            f.write(line)
            written += len(line)
            n += 1
        f.write(line[: len(line) // 2])  # the file ends mid-document
    return n


def test_big_input_streams_with_flat_memory(benchmark, es, es_settings, quick, tmp_path):  # noqa: F811
    mb = int(os.environ.get("XLIR_BIG_INPUT_MB") or (16 if quick else 1024))
    benchmark.group = GROUP.format(mb=mb)
    model = tmp_path / "model"
    build_onnx_model(model, ["berlin", "paris"], dim=384)
    path = tmp_path / "big.jsonl"
    started = time.perf_counter()
    whole = write_big_jsonl(path, mb * 2**20)
    write_s = time.perf_counter() - started
    index = f"xlir-bench-big-{uuid.uuid4().hex[:6]}"
    args = {"model": str(model), "index": index, "input": str(path)}
    args["failures"] = str(tmp_path / "big.failures.jsonl")
    env = dict(os.environ)
    env.update(
        {
            f"XLIR_ES_{k.upper()}": v
            for k, v in vars(es_settings).items()
            if isinstance(v, str) and k != "request_timeout"
        }
    )
    samples: list[tuple[float, float]] = []  # (seconds, RSS MiB)

    def run() -> dict:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(args)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        child = psutil.Process(proc.pid)
        t0 = time.perf_counter()
        while proc.poll() is None:
            try:
                samples.append((time.perf_counter() - t0, child.memory_info().rss / 2**20))
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
        out, err = proc.communicate()
        assert proc.returncode == 0, err[-2000:]
        return json.loads(out.strip().splitlines()[-1])

    try:
        report = benchmark.pedantic(run, rounds=1, iterations=1)
        es.indices.refresh(index=index)
        assert es.count(index=index)["count"] == whole
    finally:
        es.options(ignore_status=404).indices.delete(index=index)
    assert (report["indexed"], report["failed"]) == (whole, 1), report
    (failure,) = [json.loads(x) for x in Path(args["failures"]).read_text().splitlines()]
    assert failure["line"] == whole + 1 and "bad JSON" in failure["reason"]
    rss = [r for _, r in samples]
    quarter = len(rss) // 4  # the first quarter is start-up (imports, model, connection)
    first = max(rss[quarter : 2 * quarter] or rss)
    second = max(rss[2 * quarter :] or rss)
    benchmark.extra_info.update(
        {
            "input_mb": round(path.stat().st_size / 2**20, 1),
            "docs": whole,
            "docs_per_s": round(report["docs_per_s"], 1),
            "write_input_s": round(write_s, 1),
            "peak_rss_mb": round(max(rss), 1),
            "rss_2nd_quarter_peak_mb": round(first, 1),
            "rss_2nd_half_peak_mb": round(second, 1),
            "rss_samples": len(rss),
        }
    )
    if len(rss) >= 20:  # long enough to tell growth from start-up
        assert second <= first * 1.15 + 30, f"RSS grew: {first:.0f} -> {second:.0f} MiB"
    assert max(rss) < 1024, f"peak RSS {max(rss):.0f} MiB"
