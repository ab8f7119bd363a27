"""The ANN group's recall-vs-latency table in the report (benchmarks/report_ann.py)."""

from __future__ import annotations

from benchmarks.report import render
from benchmarks.report_ann import ann_table, fastest_at_goal, is_ann_group

GROUP = "11. ANN recall@10 vs kNN latency, k=10, 100 XQuAD-R vectors, 20 questions"


def row(spec, kind, nc, oversample, recall, p50, p99=None):
    return {
        "group": GROUP,
        "name": f"test_ann_recall_and_latency[{spec}-nc{nc}]",
        "params": {},
        "stats": {"median": p50 / 1000, "iqr": 0.0001, "rounds": 300, "data": [p50 / 1000]},
        "extra_info": {
            "index_options": spec,
            "index_type": kind,
            "num_candidates": nc,
            "oversample": oversample,
            "recall@10": recall,
            "recall@10_min": 0.3,
            "p50_ms": p50,
            "p99_ms": p99 or p50 * 3,
            "took_p50_ms": 1.0,
            "took_p99_ms": 5.0,
            "index_mb": 24.6,
            "load": 4.3,
        },
    }


ROWS = [
    row("bbq_hnsw", "bbq_hnsw", 100, 3.0, 0.93, 2.0),
    row("default (int8_hnsw)", "int8_hnsw", 100, 3.0, 0.991, 2.6),
    row("hnsw", "hnsw", 500, None, 0.992, 3.1),
    row("hnsw", "hnsw", 50, None, 0.966, 2.5),
]


def test_table_orders_rows_and_names_the_fastest_at_the_goal():
    assert is_ann_group(ROWS) and not is_ann_group([{"extra_info": {"recall@10": 1.0}}])
    lines = ann_table(GROUP, ROWS)
    body = [line for line in lines if line.startswith("| `")]
    # the defaults first, then by index type, num_candidates
    assert [line.split(" | ")[:2] for line in body] == [
        ["| `default (int8_hnsw)`", "100"],
        ["| `hnsw`", "50"],
        ["| `hnsw`", "500"],
        ["| `bbq_hnsw`", "100"],
    ]
    assert "| off |" in body[1] and "| 3 |" in body[0] and "| 0.9910 |" in body[0]
    assert fastest_at_goal(ROWS)["index_options"] == "default (int8_hnsw)"  # bbq: below goal
    assert lines[-1].startswith("2 of 4 settings reach recall@10 >= 0.98; the lowest client p50")
    assert "among them: `default (int8_hnsw)`" in lines[-1]


def test_report_uses_the_ann_table():
    data = {"machine_info": {"xlir": {"cores": 2}}, "datetime": "2026-12-01T00:00:00"}
    text = render({**data, "benchmarks": ROWS}, tables_only=True, allow_noisy=True)
    assert "| index options | num_candidates | oversample | recall@10 |" in text
    assert "No timed setting" not in text
