"""Batch sampling for hybrid-batch contrastive training (the paper's contribution).

A batch is a list of (query row, passage row) pairs over an example table whose rows carry a
parallel id, a language and a *group*: the set of parallel ids whose passages coincide (the
questions of one paragraph, in every language). Three batch types:

- X-X: one language, drawn per batch (uniformly, or in proportion to the rows of each
  language); each pair is a row with its own passage (query and passage in that language).
- X-Y: each pair takes the query of a parallel id in language X and the passage of the same
  id in language Y != X; pairs are drawn uniformly over all (id, X, Y) triples available.
- hybrid(alpha): X-X with probability alpha, else X-Y.

A batch never holds one group twice, hence never one parallel id twice: two translations of an
example, or two questions on one paragraph, would be false negatives for each other.

Batches are pure functions of (seed, global batch index): global batch ``i`` is drawn from
``numpy.random.default_rng([seed, i])``. Rank ``r`` of ``W`` data-parallel workers takes the
global batches ``r, r + W, r + 2W, ...`` so ranks never share a batch, and resuming at step
``s`` is just starting at local index ``s``. Sampling is with replacement across batches
(i.i.d. batches), without replacement within a batch. No torch needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

BATCHINGS = ("xx", "xy", "hybrid")
LANG_SAMPLING = ("uniform", "size")


@dataclass(frozen=True)
class Batch:
    """One batch: ``kind`` is "xx" or "xy"; rows index the example table."""

    index: int  # global batch index
    kind: str
    query_rows: np.ndarray
    passage_rows: np.ndarray

    def __len__(self) -> int:
        return len(self.query_rows)


def _codes(values: Sequence) -> tuple[np.ndarray, list]:
    """Integer codes of `values` (first-seen order is irrelevant: sorted uniques)."""
    uniques, codes = np.unique(np.asarray(values, dtype=object).astype(str), return_inverse=True)
    return codes.astype(np.int64), list(uniques)


class HybridBatchSampler:
    """Draws X-X / X-Y / hybrid batches; iterate it for this rank's batches.

    Args:
        pids, langs: per row, the parallel id and the language (any hashables).
        groups: per row, a group id consistent over one parallel id (rows sharing a group may
            not share a batch). Defaults to the parallel id.
        batch_size: pairs per batch (per rank). A language with fewer distinct groups than
            this gives smaller X-X batches.
        batching: "xx", "xy" or "hybrid"; alpha: P(X-X) for hybrid.
        lang_sampling: "uniform" (paper) or "size" (proportional to rows per language).
        rank, world_size: data-parallel position; start: first local batch index (resume).
    """

    def __init__(
        self,
        pids: Sequence,
        langs: Sequence,
        groups: Sequence | None = None,
        *,
        batch_size: int = 32,
        batching: str = "hybrid",
        alpha: float = 0.5,
        lang_sampling: str = "uniform",
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        num_batches: int | None = None,
    ):
        if batching not in BATCHINGS:
            raise ValueError(f"batching must be one of {BATCHINGS}, not {batching!r}")
        if lang_sampling not in LANG_SAMPLING:
            raise ValueError(f"lang_sampling must be one of {LANG_SAMPLING}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], not {alpha}")
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise ValueError("need batch_size >= 1 and 0 <= rank < world_size")
        if len(pids) != len(langs) or (groups is not None and len(groups) != len(pids)):
            raise ValueError("pids, langs and groups must have one entry per row")
        if len(pids) == 0:
            raise ValueError("empty example table")
        self.batch_size = batch_size
        self.batching = batching
        self.alpha = 1.0 if batching == "xx" else 0.0 if batching == "xy" else float(alpha)
        self.seed = int(seed)
        self.rank, self.world_size = rank, world_size
        self.start = start
        self.num_batches = num_batches

        pid_codes, _ = _codes(pids)
        lang_codes, self.languages = _codes(langs)
        group_codes = pid_codes if groups is None else _codes(groups)[0]
        self.pid_codes, self.lang_codes, self.group_codes = pid_codes, lang_codes, group_codes
        self._check_groups()

        # X-X: rows of each language.
        order = np.argsort(lang_codes, kind="stable")
        counts = np.bincount(lang_codes, minlength=len(self.languages))
        self._rows_by_lang = np.split(order, np.cumsum(counts)[:-1])
        sizes = counts.astype(float)
        self.lang_probs = (
            sizes / sizes.sum() if lang_sampling == "size" else np.full(len(sizes), 1 / len(sizes))
        )

        # X-Y: every ordered (query row, passage row) pair of one id in two languages.
        self._xy_q, self._xy_p = self._xy_pairs()
        if self.alpha < 1.0 and len(self._xy_q) == 0:
            raise ValueError("X-Y batches need parallel ids present in at least 2 languages")

    def _check_groups(self) -> None:
        first = np.full(self.pid_codes.max() + 1, -1)
        first[self.pid_codes] = self.group_codes
        if np.any(first[self.pid_codes] != self.group_codes):
            raise ValueError("every row of one parallel id must carry the same group")

    def _xy_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((self.lang_codes, self.pid_codes))
        pid_sorted = self.pid_codes[order]
        starts = np.flatnonzero(np.r_[True, pid_sorted[1:] != pid_sorted[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        qs, ps = [], []
        for n in np.unique(sizes[sizes >= 2]):
            block = order[starts[sizes == n][:, None] + np.arange(n)]  # (ids, n) rows
            a, b = np.nonzero(~np.eye(n, dtype=bool))  # ordered pairs of distinct positions
            qs.append(block[:, a].ravel())
            ps.append(block[:, b].ravel())
        if not qs:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        q, p = np.concatenate(qs), np.concatenate(ps)
        keep = self.lang_codes[q] != self.lang_codes[p]  # rows repeating a language (dupes)
        return q[keep], p[keep]

    # -- drawing ---------------------------------------------------------------------------

    def _unique_groups(self, rng: np.random.Generator, candidates: np.ndarray, rows_of) -> list:
        """Up to batch_size candidate positions, in random order, with distinct groups."""
        n = len(candidates)
        want = self.batch_size
        if n <= 4 * want:  # small pool: one full shuffle
            draws = rng.permutation(n)
        else:
            draws = rng.choice(n, size=min(n, 3 * want), replace=False)
        groups = self.group_codes[rows_of(draws)]
        _, first = np.unique(groups, return_index=True)
        chosen = draws[np.sort(first)][:want]
        if len(chosen) < want and len(draws) < n:  # many collisions: fall back to a shuffle
            draws = rng.permutation(n)
            groups = self.group_codes[rows_of(draws)]
            _, first = np.unique(groups, return_index=True)
            chosen = draws[np.sort(first)][:want]
        return chosen

    def batch(self, index: int) -> Batch:
        """Global batch `index` (the same on every rank and every run with this seed)."""
        rng = np.random.default_rng([self.seed, index])
        if rng.random() < self.alpha:
            lang = rng.choice(len(self.languages), p=self.lang_probs)
            rows = self._rows_by_lang[lang]
            pick = rows[self._unique_groups(rng, rows, lambda d: rows[d])]
            return Batch(index, "xx", pick, pick)
        pick = self._unique_groups(rng, self._xy_q, lambda d: self._xy_q[d])
        return Batch(index, "xy", self._xy_q[pick], self._xy_p[pick])

    def global_index(self, local: int) -> int:
        return local * self.world_size + self.rank

    def __iter__(self) -> Iterator[Batch]:
        local = self.start
        while self.num_batches is None or local < self.num_batches:
            yield self.batch(self.global_index(local))
            local += 1

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("unbounded sampler (num_batches=None)")
        return max(0, self.num_batches - self.start)
