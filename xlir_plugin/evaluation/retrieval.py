"""Ranked lists under two backends over the same vectors, scored per query with ranx.

`exact_backend` scores every candidate with numpy (the reference: full depth, full ranks for
the language-bias measure); `es_backend` asks the Elasticsearch kNN index (the product) and
sees only its top `depth` hits. Both give a `BackendRun`: per-query metric arrays for every
setting (query language x, target y: a language, or MULTI for the pooled candidates).

Ties in the exact backend are broken by candidate position (stable sort), so ranks are
always a permutation; real embeddings practically never tie.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .metrics import PAD, ranks_from_order, ranx_scores

MULTI = "*"  # the target "language" of the multilingual pool
TOP = 10  # hits kept per query to compare the backends (ANN recall@10)


@dataclass
class Layout:
    """Index arithmetic shared by both backends: who is relevant to whom, by position."""

    query_langs: np.ndarray  # (n_q,) language of each query
    cand_langs: np.ndarray  # (n_c,) language of each candidate
    cand_ids: list[str]
    relevant: np.ndarray  # (n_q, n_langs) position of the answer in each language, PAD if none
    langs: list[str]  # every language, on either side

    @classmethod
    def build(cls, data, langs: Sequence[str] | None = None) -> Layout:
        langs = list(langs or data.languages)
        position = {c.id: i for i, c in enumerate(data.candidates)}
        relevant = np.full((len(data.questions), len(langs)), PAD, dtype=np.int64)
        for row, q in enumerate(data.questions):
            for col, lang in enumerate(langs):
                cid = data.relevant[q.id].get(lang)
                if cid is not None and cid in position:
                    relevant[row, col] = position[cid]
        return cls(
            np.array([q.lang for q in data.questions], dtype=object),
            np.array([c.lang for c in data.candidates], dtype=object),
            [c.id for c in data.candidates],
            relevant,
            langs,
        )

    @property
    def query_side(self) -> list[str]:
        """Languages with questions."""
        have = set(self.query_langs.tolist())
        return [lang for lang in self.langs if lang in have]

    @property
    def candidate_side(self) -> list[str]:
        """Languages with candidates."""
        have = set(self.cand_langs.tolist())
        return [lang for lang in self.langs if lang in have]

    def targets(self) -> list[str]:
        return [*self.candidate_side, MULTI]

    def qrels(self, rows: np.ndarray, target: str) -> np.ndarray:
        """(len(rows), r) relevant positions for `target` (a language or MULTI)."""
        if target == MULTI:
            return self.relevant[rows]
        return self.relevant[rows][:, [self.langs.index(target)]]


@dataclass
class SettingRun:
    """One setting's evaluated queries (those with a relevant candidate) and their scores."""

    rows: np.ndarray  # query positions
    scores: dict[str, np.ndarray]  # ranx metric -> per-query value
    top: np.ndarray  # (n, TOP) best candidate positions, PAD-padded


@dataclass
class BackendRun:
    name: str
    metrics: list[str]
    settings: dict[tuple[str, str], SettingRun] = field(default_factory=dict)
    #: exact only: query language -> (n_x, n_langs) full ranks in the multilingual pool
    multi_ranks: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0


def _merge(parts: list[SettingRun], metrics: list[str]) -> SettingRun:
    if not parts:
        return SettingRun(np.zeros(0, np.int64), {m: np.zeros(0) for m in metrics}, _empty_top())
    return SettingRun(
        np.concatenate([p.rows for p in parts]),
        {m: np.concatenate([p.scores[m] for p in parts]) for m in metrics},
        np.concatenate([p.top for p in parts]),
    )


def _empty_top() -> np.ndarray:
    return np.zeros((0, TOP), dtype=np.int64)


def _top(run: np.ndarray) -> np.ndarray:
    out = np.full((len(run), TOP), PAD, dtype=np.int64)
    width = min(TOP, run.shape[1])
    out[:, :width] = run[:, :width]
    return out


def _score_run(
    rows: np.ndarray, qrels: np.ndarray, run: np.ndarray, metrics: list[str]
) -> SettingRun:
    keep = (qrels != PAD).any(axis=1)
    rows, qrels, run = rows[keep], qrels[keep], run[keep]
    return SettingRun(rows, ranx_scores(qrels, run, metrics), _top(run))


def exact_backend(
    layout: Layout,
    queries: np.ndarray,
    cands: np.ndarray,
    metrics: list[str],
    depth: int | None = None,
    block: int = 512,
    progress: bool = True,
    scorer=None,
) -> BackendRun:
    """Score all candidates by dot product (cosine on normalised vectors); rank; score.

    scorer: (query rows) -> (rows, candidates) scores instead of the dot product with `cands`
    (e.g. a document's best passage: `benchmarks/long_documents.py`); `cands` is then only
    counted.

    depth: the longest ranked list any metric may read (None: the whole pool). Lists are cut
    after the last relevant item of a block (and never before TOP), which changes no metric.
    """
    started = time.perf_counter()
    result = BackendRun("exact", metrics)
    columns = {y: np.flatnonzero(layout.cand_langs == y) for y in layout.candidate_side}
    for x in tqdm(layout.query_side, desc="exact ranking", unit="lang", disable=not progress):
        rows_x = np.flatnonzero(layout.query_langs == x)
        parts: dict[str, list[SettingRun]] = {y: [] for y in layout.targets()}
        pool_ranks = []
        for start in range(0, len(rows_x), block):
            rows = rows_x[start : start + block]
            scores = scorer(rows) if scorer is not None else queries[rows] @ cands.T
            for y in layout.targets():
                cols = np.arange(len(cands)) if y == MULTI else columns[y]
                if not len(cols):
                    continue
                order = np.argsort(-scores[:, cols], axis=1, kind="stable")
                qrels = layout.qrels(rows, y)
                local = np.where(qrels != PAD, np.searchsorted(cols, np.maximum(qrels, 0)), PAD)
                ranks = ranks_from_order(order, local)
                if y == MULTI:
                    pool_ranks.append(ranks)
                width = len(cols) if depth is None else min(depth, len(cols))
                if np.isfinite(ranks).any():
                    width = min(width, max(TOP, int(np.nanmax(ranks))))
                run = cols[order[:, :width]]
                parts[y].append(_score_run(rows, qrels, run, metrics))
        for y, chunks in parts.items():
            result.settings[(x, y)] = _merge(chunks, metrics)
        if pool_ranks:
            result.multi_ranks[x] = np.concatenate(pool_ranks)
    result.seconds = time.perf_counter() - started
    return result


def es_backend(
    es,
    index: str,
    layout: Layout,
    queries: np.ndarray,
    metrics: list[str],
    depth: int,
    num_candidates: int | None = None,
    batch_size: int = 100,
    progress: bool = True,
) -> BackendRun:
    """kNN top-`depth` lists from the engine (Elasticsearch or OpenSearch): mono/cross filter on `lang` inside the kNN
    clause (pre-filtering), multi searches the whole index."""
    from ..search import search_vectors

    started = time.perf_counter()
    result = BackendRun("es", metrics)
    position = {cid: i for i, cid in enumerate(layout.cand_ids)}
    targets = layout.targets()
    per_x = {x: np.flatnonzero(layout.query_langs == x) for x in layout.query_side}
    total = sum(
        int((layout.qrels(rows, y) != PAD).any(axis=1).sum())
        for rows in per_x.values()
        for y in targets
    )
    bar = tqdm(total=total, desc="engine kNN", unit="query", disable=not progress)
    for x, rows_x in per_x.items():
        for y in targets:
            qrels = layout.qrels(rows_x, y)
            rows = rows_x[(qrels != PAD).any(axis=1)]
            if not len(rows):
                continue
            if y == MULTI:
                mode, kwargs = "multilingual", {}
            elif y == x:
                mode, kwargs = "mono", {"lang": x}
            else:
                mode, kwargs = "cross", {"targets": [y]}
            hits = search_vectors(
                es, index, queries[rows], mode=mode, k=depth, num_candidates=num_candidates,
                batch_size=batch_size, **kwargs,
            )  # fmt: skip
            run = np.full((len(rows), depth), PAD, dtype=np.int64)
            for i, row_hits in enumerate(hits):
                ids = [position[h.id] for h in row_hits[:depth]]
                run[i, : len(ids)] = ids
            result.settings[(x, y)] = _score_run(rows, layout.qrels(rows, y), run, metrics)
            bar.update(len(rows))
    bar.close()
    result.seconds = time.perf_counter() - started
    return result


def top_overlap(a: SettingRun, b: SettingRun, k: int = TOP) -> np.ndarray:
    """Per query, the share of a's top k (the reference) also in b's top k."""
    b_top = {int(r): set(t[:k].tolist()) for r, t in zip(b.rows, b.top, strict=True)}
    out = []
    for r, t in zip(a.rows, a.top, strict=True):
        ref = {int(c) for c in t[:k] if c != PAD}
        if ref and int(r) in b_top:
            out.append(len(ref & b_top[int(r)]) / len(ref))
    return np.asarray(out, dtype=float)
