"""Ranking metrics from the ranks of relevant candidates (1 = top; inf = not retrieved).

Working from ranks gives exact full-depth figures over 13k x 13k scores without building
13k-long ranked lists per query; `tests/test_evaluation.py` cross-checks every function here
against ranx and against hand computations.
"""

from __future__ import annotations

import numpy as np


def average_precision(ranks: np.ndarray, depth: float = np.inf) -> np.ndarray:
    """AP per row of `ranks` (n, r): relevant items ranked beyond `depth` count as not found.

    NaN marks a relevant item that does not exist (a question missing in that language).
    """
    ranks = np.atleast_2d(np.asarray(ranks, dtype=float))
    n_relevant = np.sum(~np.isnan(ranks), axis=1)
    found = np.where(ranks <= depth, ranks, np.inf)
    found = np.sort(np.nan_to_num(found, nan=np.inf), axis=1)
    position = np.arange(1, ranks.shape[1] + 1)
    precision = np.where(np.isfinite(found), position / found, 0.0)
    return np.divide(
        precision.sum(axis=1), n_relevant, out=np.zeros(len(ranks)), where=n_relevant > 0
    )


def recall_at(ranks: np.ndarray, k: int) -> np.ndarray:
    """Share of a row's relevant items ranked in the top k."""
    ranks = np.atleast_2d(np.asarray(ranks, dtype=float))
    n_relevant = np.sum(~np.isnan(ranks), axis=1)
    hits = np.sum(np.nan_to_num(ranks, nan=np.inf) <= k, axis=1)
    return np.divide(hits, n_relevant, out=np.zeros(len(ranks)), where=n_relevant > 0)


def rank_distance(ranks: np.ndarray) -> np.ndarray:
    """Language bias (PAPER.md): max rank - min rank of a query's relevant items in the pool."""
    ranks = np.atleast_2d(np.asarray(ranks, dtype=float))
    return np.nanmax(ranks, axis=1) - np.nanmin(ranks, axis=1)
