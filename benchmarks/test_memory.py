"""Group 6, memory: peak RSS of a serving process holding the model.

Each engine runs in a fresh Python process that imports it, loads the model, and encodes one
batch of 64 real passages and one query, as a serving process would; the process reports its
peak RSS (`ru_maxrss`). The time measured is that cold start (import + load + first batch).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.engines import ENGINES

GROUP = "6. memory: peak RSS of a serving process, model load + encode 64 passages, 2 threads"
REPO_ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, sys, time
from pathlib import Path
def peak_kib():  # VmHWM: this process's own peak (ru_maxrss keeps the parent's across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
start = time.perf_counter()
from benchmarks.engines import load_engine
args = json.loads(sys.argv[1])
engine = load_engine(args["engine"], {k: Path(v) for k, v in args["dirs"].items()}, 2)
loaded = time.perf_counter()
rss_loaded = peak_kib()
vectors = engine.encode(args["passages"], False)
engine.encode(["how many people live in berlin"], True)
done = time.perf_counter()
print(json.dumps({
    "peak_rss_kib": peak_kib(),
    "rss_after_load_kib": rss_loaded,
    "load_s": loaded - start,
    "encode_s": done - loaded,
    "shape": list(vectors.shape),
}))
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_serving_peak_rss(benchmark, model_dirs, passages, engine):
    benchmark.group = GROUP
    batch = passages[:64]
    args = json.dumps(
        {"engine": engine, "dirs": {k: str(v) for k, v in model_dirs.items()}, "passages": batch}
    )

    def run() -> dict:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, args],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    result = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result["shape"] == [len(batch), 384]
    benchmark.extra_info.update(
        {
            "engine": engine,
            "peak_rss_mb": round(result["peak_rss_kib"] / 1024, 1),
            "rss_after_load_mb": round(result["rss_after_load_kib"] / 1024, 1),
            "load_s": round(result["load_s"], 2),
            "first_batch_s": round(result["encode_s"], 2),
        }
    )
    assert result["peak_rss_kib"] > 0
