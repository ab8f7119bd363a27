"""`python -m benchmarks.scale_report results/scale.json`: the scale rows (`test_scale.py`) as
`results/scale.md`'s tables and `results/scale.png` (latency and recall against pool size, and
recall against num_candidates at the largest pool)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MILLION = 1_000_000


def table(rows: list[dict]) -> str:
    head = (
        "| engine | index option | vectors | p50 ms | p99 ms | recall@10 (default cand.) | "
        "cand. for .98 | recall, oversample 3 / 5 / 10 | ingest docs/s | to merged s | graph MB | "
        "quantized MB | float MB | store MB per 1M | heap MB | load before/after |\n|" + "---|" * 16
    )
    lines = [head]
    for r in sorted(rows, key=lambda r: (r["engine"], r["option"], r["size"])):
        files = r["files_mb"]
        per_million = r["store_mb"] * MILLION / r["size"]
        lines.append(
            f"| {r['engine']} | {r['option']} | {r['size']:,} | {r['p50_ms']:.1f} | "
            f"{r['p99_ms']:.1f} | {r['recall_at_10']:.3f} ({r['num_candidates']}) | "
            f"{r['candidates_for_target'] or '> 2000'} | {oversampled(r)} | "
            f"{r['ingest_docs_per_s']:,.0f} | "
            f"{r['seconds_to_merged']:,.0f} | {files.get('graph', 0):,.1f} | "
            f"{files.get('quantized', 0):,.1f} | {files.get('float', 0):,.1f} | "
            f"{per_million:,.0f} | {r['heap_used_mb']:,.0f} | "
            f"{r['load_before'][0]:.2f} / {r['load_after'][0]:.2f} |"
        )
    return "\n".join(lines)


def oversampled(row: dict) -> str:
    """Recall@10 at the default num_candidates per rescore oversample (quantized options)."""
    by = row.get("recall_by_oversample") or {}
    return " / ".join(f"{by[k]:.3f}" for k in sorted(by, key=float)) or "-"


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lat, rec, cand) = plt.subplots(1, 3, figsize=(16, 4.4))
    largest = max(r["size"] for r in rows)
    for key in sorted({(r["engine"], r["option"]) for r in rows}):
        line = sorted(
            (r for r in rows if (r["engine"], r["option"]) == key), key=lambda r: r["size"]
        )
        sizes = [r["size"] for r in line]
        label = " ".join(key)
        (p50,) = lat.plot(sizes, [r["p50_ms"] for r in line], marker="o", label=f"{label} p50")
        color = p50.get_color()
        lat.plot(sizes, [r["p99_ms"] for r in line], ls="--", color=color)
        rec.plot(sizes, [r["recall_at_10"] for r in line], marker="o", label=label, color=color)
        if line[-1]["size"] == largest:  # what more candidates buy at the largest pool
            by = line[-1]["recall_by_candidates"]
            counts = sorted(by, key=int)
            cand.plot(
                [int(n) for n in counts],
                [by[n] for n in counts],
                marker="o",
                color=color,
                label=label,
            )
    for ax in (lat, rec):
        ax.set_xscale("log")
        ax.set_xlabel("vectors in the pool (13k real; larger pools synthetic around them)")
    lat.set_ylabel("kNN latency, k=10, ms (solid p50, dashed p99)")
    rec.set_ylabel("recall@10 vs exact, default num_candidates")
    cand.set_xscale("log")
    cand.set_xlabel(f"num_candidates, at {largest:,} vectors")
    cand.set_ylabel("recall@10 vs exact")
    cand.axhline(0.95, color="grey", lw=0.8, ls=":")
    for ax in (lat, rec, cand):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rows", type=Path, help="the JSON test_scale.py wrote (XLIR_SCALE_JSON)")
    parser.add_argument("--png", type=Path, default=Path("results/scale.png"))
    args = parser.parse_args(argv)
    rows = json.loads(args.rows.read_text())["rows"]
    print(table(rows))
    plot(rows, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
