"""Ranking metrics: mAP and recall through ranx, language bias (rank distance) in numpy.

ranx (numba) is imported here only, when metrics are computed. Runs and qrels are passed to
it as padded numpy arrays (candidate positions as ids), which skips building per-query
dictionaries for 130k queries; `tests/test_evaluation.py` checks these wrappers against hand
computations.

Conventions: a run row lists candidate positions best first, padded with -1; a qrels row
lists the relevant candidate positions, padded with -1. AP divides by the number of relevant
items, so a relevant item missing from a truncated run (e.g. Elasticsearch's top k)
contributes 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PAD = -1


def ranx_scores(
    qrels: np.ndarray, run: np.ndarray, metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """Per-query scores of ranx `metrics` (e.g. "map", "map@100", "recall@10").

    qrels: (n, r) int relevant candidate positions (PAD-padded; every row needs one).
    run: (n, k) int ranked candidate positions, best first (PAD-padded).
    """
    import ranx

    qrels = np.atleast_2d(np.asarray(qrels, dtype=np.int64))
    run = np.atleast_2d(np.asarray(run, dtype=np.int64))
    if len(qrels) != len(run):
        raise ValueError(f"{len(qrels)} qrels rows for {len(run)} run rows")
    if not len(run):
        return {m: np.zeros(0) for m in metrics}
    if not (qrels != PAD).any(axis=1).all():
        raise ValueError("every query needs at least one relevant candidate")
    if run.shape[1] == 0:
        run = np.full((len(run), 1), PAD, dtype=np.int64)
    # qrels rows: [id, relevance]; padding gets relevance 0, which ranx drops
    q = np.stack([qrels, (qrels != PAD)], axis=-1).astype(np.float64)
    q[..., 0][qrels == PAD] = -2.0  # never equal to a run id, padding included
    # run rows: [id, score]; scores only need to decrease (ranx reads rows in order)
    scores = np.broadcast_to(-np.arange(run.shape[1], dtype=np.float64), run.shape)
    r = np.stack([run.astype(np.float64), scores], axis=-1)
    r = np.ascontiguousarray(r)
    q = np.ascontiguousarray(q)
    out = ranx.evaluate(q, r, list(metrics), return_mean=False)
    if len(metrics) == 1:
        out = {metrics[0]: out}
    return {m: np.asarray(v, dtype=np.float64) for m, v in out.items()}


def rank_distance(ranks: np.ndarray) -> np.ndarray:
    """Language bias (PAPER.md): max rank - min rank of each row's relevant items (NaN: none)."""
    ranks = np.atleast_2d(np.asarray(ranks, dtype=float))
    has = ~np.isnan(ranks)
    out = np.full(len(ranks), np.nan)
    ok = has.any(axis=1)
    out[ok] = np.nanmax(ranks[ok], axis=1) - np.nanmin(ranks[ok], axis=1)
    return out


def ranks_from_order(order: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based ranks of `relevant` (n, r; PAD = none, giving NaN) in full orders (n, pool)."""
    inverse = np.empty_like(order)
    np.put_along_axis(inverse, order, np.arange(order.shape[1])[None, :], axis=1)
    has = relevant != PAD
    found = np.take_along_axis(inverse, np.where(has, relevant, 0), axis=1) + 1.0
    return np.where(has, found, np.nan)
