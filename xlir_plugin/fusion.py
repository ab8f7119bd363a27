"""Reciprocal rank fusion, computed in the client (not every distribution has the RRF retriever)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")

RANK_CONSTANT = 60


def rrf(
    rankings: Sequence[Sequence[T]],
    k: int | None = None,
    rank_constant: int = RANK_CONSTANT,
    key: Callable[[T], Hashable] = lambda item: item,
) -> list[tuple[T, float]]:
    """Fuse ranked lists: score(d) = sum over lists of 1 / (rank_constant + rank(d)), rank from 1.

    Returns (item, score) best first, ties broken by first appearance; the item kept for a
    key is the first one seen. `k` cuts the result.
    """
    scores: dict[Hashable, float] = {}
    first: dict[Hashable, T] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            name = key(item)
            scores[name] = scores.get(name, 0.0) + 1.0 / (rank_constant + rank)
            first.setdefault(name, item)
    order = sorted(scores, key=lambda name: -scores[name])  # stable: first appearance wins ties
    if k is not None:
        order = order[:k]
    return [(first[name], scores[name]) for name in order]
