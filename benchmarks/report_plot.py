"""One small plot for the report: query latency (p50) against passage throughput, per engine.

The two figures a serving choice trades: how fast one query is encoded (group 1, at the
throughput group's thread count) and how many passages per second an ingest gets (group 2).
Down and to the right is better. Both come from the same JSON, so from the same run.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.report import NOISY, figures, group_rows, label

LATENCY_GROUP = "query encode latency"


def _throughput(groups: dict[str, list[dict]]) -> tuple[dict[str, float], int | None]:
    """texts/s per engine, and the thread count it was measured at."""
    for rows in groups.values():
        if rows and all("texts_per_s" in (b.get("extra_info") or {}) for b in rows):
            threads = (rows[0].get("extra_info") or {}).get("threads")
            return {label(b): float(b["extra_info"]["texts_per_s"]) for b in rows}, threads
    return {}, None


def _latency(groups: dict[str, list[dict]], threads: int | None) -> dict[str, float]:
    """p50 ms per engine in the query latency group at `threads` (else the first one)."""
    candidates = [rows for g, rows in groups.items() if LATENCY_GROUP in g]
    same = [r for r in candidates if (r[0].get("extra_info") or {}).get("threads") == threads]
    if not candidates:
        return {}
    rows = (same or candidates)[0]
    return {label(b): figures(b).get("p50_ms", b["stats"]["median"] * 1000) for b in rows}


def points(data: dict) -> dict[str, tuple[float, float]]:
    """Engine -> (texts/s, query p50 ms), for the engines both groups measured."""
    groups = group_rows(data)
    throughput, threads = _throughput(groups)
    latency = _latency(groups, threads)
    return {n: (throughput[n], latency[n]) for n in throughput if n in latency}


def plot(data: dict, path: Path, noisy: bool = False) -> bool:
    """Write the PNG; False (and nothing written) when the run lacks groups 1-2."""
    found = points(data)
    if not found:
        return False
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    for name, (texts_per_s, p50) in found.items():
        ax.scatter(texts_per_s, p50, s=40)
        ax.annotate(name, (texts_per_s, p50), textcoords="offset points", xytext=(5, 4))
    ax.set_xlabel("passage throughput (texts/s)")
    ax.set_ylabel("query encode p50 (ms)")
    ax.set_title("latency vs throughput" + (f" ({NOISY})" if noisy else ""))
    ax.margins(x=0.25, y=0.15)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
