"""The recall-vs-latency table of the ANN group (`benchmarks/test_ann.py`) for REPORT.md.

The generic group table keys rows by engine or index type, and here one index type has many
rows (num_candidates x oversample), each judged on two figures at once: recall@10 against
exact search and the latency it costs. So the group gets its own table, one row per setting,
with the rows meeting the recall goal and the fastest of them named under it.
"""

from __future__ import annotations

#: recall@10 the defaults must reach (issue #15), the same figure test_ann.py asserts
GOAL = 0.98
TYPE_ORDER = (
    "hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "int8_flat", "int4_flat", "bbq_flat",
    "bbq_disk",
)  # fmt: skip
COLUMNS = (
    "index options", "num_candidates", "oversample", "recall@10", "min recall", "p50 (ms)",
    "p99 (ms)", "ES took p50", "ES took p99", "index (MiB)", "load (1 min)",
)  # fmt: skip


def is_ann_group(rows: list[dict]) -> bool:
    """A group whose every row carries the ANN figures (so it gets this table)."""
    keys = ("num_candidates", "recall@10")
    return bool(rows) and all(all(k in (b.get("extra_info") or {}) for k in keys) for b in rows)


def _sort_key(bench: dict) -> tuple:
    extra = bench["extra_info"]
    kind = extra.get("index_type") or ""
    default = str(extra.get("index_options", "")).startswith("default")
    rank = TYPE_ORDER.index(kind) if kind in TYPE_ORDER else len(TYPE_ORDER)
    return (not default, rank, str(extra.get("index_options")), extra["num_candidates"],
            extra.get("oversample") or 0.0)  # fmt: skip


def _ms(value) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def _oversample(value) -> str:
    return f"{value:g}" if value else "off"


def row_cells(extra: dict) -> list[str]:
    """One table row: the setting, then recall, client and server latency, size, load."""
    oversample = extra.get("oversample")
    return [
        f"`{extra.get('index_options')}`",
        str(extra["num_candidates"]),
        _oversample(oversample),
        f"{extra['recall@10']:.4f}",
        f"{extra.get('recall@10_min', 0):.1f}",
        _ms(extra.get("p50_ms")),
        _ms(extra.get("p99_ms")),
        _ms(extra.get("took_p50_ms")),
        _ms(extra.get("took_p99_ms")),
        f"{extra.get('index_mb', 0):.1f}",
        str(extra.get("load", "-")),
    ]


def fastest_at_goal(rows: list[dict]) -> dict | None:
    """The row with the lowest client p50 among those reaching recall@10 >= GOAL."""
    good = [b["extra_info"] for b in rows if b["extra_info"]["recall@10"] >= GOAL]
    timed = [e for e in good if isinstance(e.get("p50_ms"), int | float)]
    return min(timed, key=lambda e: (e["p50_ms"], e["p99_ms"])) if timed else None


def ann_table(
    group: str, rows: list[dict], noisy: bool = False, load: dict | None = None, why: str = ""
) -> list[str]:
    """The group's recall-vs-latency table; the arguments are `report.table`'s (heading marked
    when the run is noisy, the group's load line under it)."""
    from benchmarks.quiet import group_load_line
    from benchmarks.report import NOISY, mark

    ordered = sorted(rows, key=_sort_key)
    load_line = group_load_line(rows, load) + (f" **{NOISY}: {why}.**" if why else "")
    lines = ["", f"## {mark(group, noisy)}", "", load_line, ""]
    lines += [
        "Recall@10 = mean over the questions of the share of Elasticsearch's top 10 whose "
        "exact cosine reaches the exact 10th best (numpy, same vectors); min recall = the "
        "worst question. p50/p99 = one kNN search timed in the client; ES took = the "
        "server's own figure. oversample: the rescore of quantized vectors with the float "
        "ones (off: none). Rows are measured one after another: compare them under the load "
        "shown.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(row_cells(b["extra_info"])) + " |" for b in ordered]
    best = fastest_at_goal(rows)
    lines.append("")
    if best:
        good = sum(b["extra_info"]["recall@10"] >= GOAL for b in rows)
        lines.append(
            f"{good} of {len(rows)} settings reach recall@10 >= {GOAL}; the lowest client p50 "
            f"among them: `{best['index_options']}`, num_candidates {best['num_candidates']}, "
            f"oversample {_oversample(best.get('oversample'))} (recall@10 {best['recall@10']:.4f}, "
            f"p50 {best['p50_ms']:.1f} ms, p99 {best['p99_ms']:.1f} ms). Rows timed one after "
            "another under a changing load: compare p50s only beyond the spread of the rows "
            "that differ in nothing that costs time."
        )
    else:
        lines.append(f"No timed setting reached recall@10 >= {GOAL}.")
    return lines
