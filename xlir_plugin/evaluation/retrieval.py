"""Ranks of the relevant candidates under two backends over the same vectors.

`exact_ranks` scores every candidate with numpy (the reference); `es_ranks` asks the
Elasticsearch kNN index (the product) and only sees its top `depth` hits.
Both return the same structure: `Ranks`, one float array per (query language, setting).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

MULTI = "*"  # the target "language" of the multilingual pool


@dataclass
class Ranks:
    """`pair[(x, y)]`: ranks (n_x,) of the answer in language y's candidates for x's queries
    (NaN where a question has no translation in y); `multi[x]`: (n_x, n_langs) pool ranks."""

    langs: list[str]
    pair: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    multi: dict[str, np.ndarray] = field(default_factory=dict)
    top10: dict[str, list[set[int]]] = field(default_factory=dict)  # multi pool, by position


@dataclass
class Layout:
    """Index arithmetic shared by both backends: who is relevant to whom, by position."""

    query_langs: np.ndarray  # (n_q,)
    cand_langs: np.ndarray  # (n_c,)
    cand_ids: list[str]
    relevant: np.ndarray  # (n_q, n_langs) candidate position of the answer, -1 if none
    langs: list[str]

    @classmethod
    def build(cls, data, langs: list[str]) -> Layout:
        position = {c.id: i for i, c in enumerate(data.candidates)}
        relevant = np.full((len(data.questions), len(langs)), -1, dtype=np.int64)
        for row, q in enumerate(data.questions):
            for col, lang in enumerate(langs):
                cid = data.relevant[q.id].get(lang)
                if cid is not None:
                    relevant[row, col] = position[cid]
        return cls(
            np.array([q.lang for q in data.questions]),
            np.array([c.lang for c in data.candidates]),
            [c.id for c in data.candidates],
            relevant,
            langs,
        )


def exact_ranks(layout: Layout, queries: np.ndarray, cands: np.ndarray, block: int = 512) -> Ranks:
    """Full ranks by counting the candidates that score strictly higher than the answer."""
    ranks = Ranks(layout.langs)
    masks = [layout.cand_langs == lang for lang in layout.langs]
    for x in tqdm(layout.langs, desc="exact ranks", unit="lang"):
        rows = np.flatnonzero(layout.query_langs == x)
        per_y = np.full((len(rows), len(layout.langs)), np.nan)
        pool = np.full((len(rows), len(layout.langs)), np.nan)
        ranks.top10[x] = []
        for start in range(0, len(rows), block):
            chunk = rows[start : start + block]
            scores = queries[chunk] @ cands.T
            top = min(10, scores.shape[1] - 1)
            ranks.top10[x] += [set(r) for r in np.argpartition(-scores, top, axis=1)[:, :top]]
            rel = layout.relevant[chunk]
            has = rel >= 0
            answer = np.where(has, np.take_along_axis(scores, np.maximum(rel, 0), axis=1), np.nan)
            for col, mask in enumerate(masks):
                above_in_y = (scores[:, mask] > answer[:, col : col + 1]).sum(axis=1)
                above_all = (scores > answer[:, col : col + 1]).sum(axis=1)
                per_y[start : start + len(chunk), col] = np.where(
                    has[:, col], above_in_y + 1, np.nan
                )
                pool[start : start + len(chunk), col] = np.where(has[:, col], above_all + 1, np.nan)
        for col, y in enumerate(layout.langs):
            ranks.pair[(x, y)] = per_y[:, col]
        ranks.multi[x] = pool
    return ranks


def es_ranks(
    es, index: str, layout: Layout, queries: np.ndarray, depth: int, num_candidates: int | None
) -> Ranks:
    """Ranks from Elasticsearch kNN top-`depth` lists (inf when the answer is not returned)."""
    from ..search import search_vectors

    ranks = Ranks(layout.langs)
    position = {cid: i for i, cid in enumerate(layout.cand_ids)}
    targets = [*layout.langs, MULTI]
    bar = tqdm(total=len(layout.langs) * len(targets), desc="Elasticsearch kNN", unit="setting")
    for x in layout.langs:
        rows = np.flatnonzero(layout.query_langs == x)
        for y in targets:
            mode = {x: "mono", MULTI: "multilingual"}.get(y, "cross")
            hits = search_vectors(
                es, index, queries[rows], mode=mode, lang=x, targets=None if y in (x, MULTI) else [y],
                k=depth, num_candidates=num_candidates,
            )  # fmt: skip
            found = np.full((len(rows), len(layout.langs)), np.nan)
            for i, row_hits in enumerate(hits):
                where = {position[h.id]: rank for rank, h in enumerate(row_hits, start=1)}
                for col in range(len(layout.langs)):
                    rel = layout.relevant[rows[i], col]
                    if rel >= 0:
                        found[i, col] = where.get(rel, np.inf)
            if y == MULTI:
                ranks.multi[x] = found
                ranks.top10[x] = [{position[h.id] for h in row_hits[:10]} for row_hits in hits]
            else:
                ranks.pair[(x, y)] = found[:, layout.langs.index(y)]
            bar.update()
    bar.close()
    return ranks
