"""The paper's figures from ranked runs: per-language rows and macro averages (PAPER.md).

Mono = mean over query languages X of mAP(X -> X); Cross = mean over all pairs (X, Y != X)
of mAP(X -> Y); Multi = mean over X of mAP(X -> pool of all languages). Per-language rows:
Cross(X) = mean over Y of mAP(X -> Y); R@1 mono, R@1 cross (mean over Y), R@10 multi; rank
distance(X) = mean over X's queries with at least two relevant candidates in the pool of
(max rank - min rank), computed on the exact backend only (it needs full ranks). A query is
scored in a setting only when it has a relevant candidate there (questions missing in
language Y are skipped for X -> Y).
"""

from __future__ import annotations

import numpy as np

from .metrics import rank_distance
from .result import COLUMNS, BackendResult
from .retrieval import MULTI, BackendRun, Layout, top_overlap


def _mean(values) -> float:
    values = np.asarray(list(values), dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def score(run: BackendRun, map_metric: str, layout: Layout) -> BackendResult:
    """Per-language rows and the paper's macro averages (Cross: over all language pairs)."""
    per_lang: dict[str, dict[str, float]] = {}
    cross_map: dict[str, dict[str, float]] = {}
    pair_map: list[float] = []
    pair_r1: list[float] = []
    counts = {"mono": 0, "cross": 0, "multi": 0}
    for x in layout.query_side:
        present = {
            y: s for (qx, y), s in run.settings.items() if qx == x and y != MULTI and len(s.rows)
        }
        cross_map[x] = {y: _mean(s.scores[map_metric]) for y, s in present.items()}
        others = [y for y in present if y != x]
        r1 = {y: _mean(s.scores["recall@1"]) for y, s in present.items()}
        pair_map += [cross_map[x][y] for y in others]
        pair_r1 += [r1[y] for y in others]
        counts["mono"] += len(present[x].rows) if x in present else 0
        counts["cross"] += sum(len(present[y].rows) for y in others)
        row = {
            "mono": cross_map[x].get(x, np.nan),
            "cross": _mean(cross_map[x][y] for y in others),
            "r1_mono": r1.get(x, np.nan),
            "r1_cross": _mean(r1[y] for y in others),
            "multi": np.nan,
            "r10_multi": np.nan,
            "rank_distance": np.nan,
        }
        multi = run.settings.get((x, MULTI))
        if multi is not None and len(multi.rows):
            counts["multi"] += len(multi.rows)
            row["multi"] = _mean(multi.scores[map_metric])
            row["r10_multi"] = _mean(multi.scores["recall@10"])
        if x in run.multi_ranks:
            ranks = run.multi_ranks[x]
            several = np.sum(~np.isnan(ranks), axis=1) >= 2
            row["rank_distance"] = _mean(rank_distance(ranks[several]))
        per_lang[x] = {k: float(v) for k, v in row.items()}
    mean = {c: _mean(r[c] for r in per_lang.values()) for c in COLUMNS}
    mean["cross"] = _mean(pair_map)  # macro over the (X, Y) pairs, as the paper does
    mean["r1_cross"] = _mean(pair_r1)
    return BackendResult(map_metric, per_lang, mean, cross_map, counts, run.seconds)


def es_gap(exact: BackendRun, approx: BackendRun, layout: Layout, es_map: str, full_map: str):
    """ES minus exact: at the same depth (the ANN effect alone) and against full-depth exact;
    ANN recall@10 = share of the exact top 10 that Elasticsearch also returns in its top 10."""
    es_res = score(approx, es_map, layout).mean
    same_depth = score(exact, es_map, layout).mean
    full = score(exact, full_map, layout).mean
    gap: dict[str, float] = {}
    for c in ("mono", "cross", "multi"):
        gap[f"{c}_map_delta_same_depth"] = es_res[c] - same_depth[c]
        gap[f"{c}_map_delta_vs_full"] = es_res[c] - full[c]
    kinds: dict[str, list[np.ndarray]] = {"mono": [], "cross": [], "multi": []}
    for (x, y), ref in exact.settings.items():
        if (x, y) in approx.settings:
            kind = "multi" if y == MULTI else "mono" if y == x else "cross"
            kinds[kind].append(top_overlap(ref, approx.settings[(x, y)]))
    for kind, parts in kinds.items():
        if parts:
            gap[f"{kind}_ann_recall_at_10"] = _mean(np.concatenate(parts))
    return gap


def metrics_for(depth: int | None, es_depth: int | None = None) -> tuple[str, list[str]]:
    """The mAP measure name and the ranx measures to compute."""
    full = "map" if depth is None else f"map@{depth}"
    names = [full, "recall@1", "recall@10"]
    if es_depth is not None and f"map@{es_depth}" != full:
        names.append(f"map@{es_depth}")
    return full, names
