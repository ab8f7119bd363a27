"""Parallel sentences for cross-lingual distillation, and the sampler that draws them.

Each pair is an English text and its translation. The teacher (a frozen copy of the base
model) embeds the English side; the student is pulled onto that vector for the English text
and for its translation (Reimers & Gurevych, 2020). That aligns the languages while the English
space, where the base model's monolingual quality lives, stays where it was: the naive
alternative (translations as extra contrastive pairs) measurably cost Mono mAP here.

Sources, each with a sampling weight (``PATH[:WEIGHT]`` on the command line):
- multiway JSONL (NTREX-128): ``{"id", "doc_id"?, "text": {lang: sentence}}``;
- pair JSONL (Tatoeba): ``{"id", "lang", "en", <lang>: translation}``;
- ``qa``: the questions of the training table, English question -> each of its translations.

No torch here: batches are pure functions of (seed, global batch index), like
`trainer.samplers.HybridBatchSampler`, so DDP ranks and resumed runs agree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

QA_SOURCE = "qa"
PIVOT = "en"


@dataclass
class ParallelPairs:
    """English/translation pairs; `group` keeps related pairs on one side of a split."""

    en: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)
    lang: list[str] = field(default_factory=list)
    group: list[str] = field(default_factory=list)
    as_query: list[bool] = field(default_factory=list)  # always embedded with the query prefix

    def __len__(self) -> int:
        return len(self.en)

    def add(self, en: str, other: str, lang: str, group: str, as_query: bool = False) -> None:
        if en and other and lang != PIVOT:
            self.en.append(en)
            self.other.append(other)
            self.lang.append(lang)
            self.group.append(group)
            self.as_query.append(as_query)

    def select(self, idx) -> ParallelPairs:
        out = ParallelPairs()
        for i in np.asarray(idx, dtype=np.int64):
            out.add(self.en[i], self.other[i], self.lang[i], self.group[i], self.as_query[i])
        return out

    def split(self, val_fraction: float, seed: int = 0) -> tuple[ParallelPairs, ParallelPairs]:
        """(train, validation): a seeded share of the groups is held out whole."""
        groups = np.asarray(self.group, dtype=object)
        uniq = np.unique(groups)
        n_val = int(round(len(uniq) * val_fraction)) if val_fraction > 0 else 0
        held = np.random.default_rng([seed, 11]).permutation(uniq)[:n_val]
        is_val = np.isin(groups, held)
        return self.select(np.flatnonzero(~is_val)), self.select(np.flatnonzero(is_val))

    def languages(self) -> dict[str, int]:
        return {la: self.lang.count(la) for la in sorted(set(self.lang))}


def parse_sources(spec: str) -> list[tuple[str, float]]:
    """``"a.jsonl:2,qa"`` -> ``[("a.jsonl", 2.0), ("qa", 1.0)]``."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        path, _, weight = item.rpartition(":")
        if not path or not _is_number(weight):
            path, weight = item, "1"
        if float(weight) <= 0:
            raise ValueError(f"--distill-data {item}: the weight must be positive")
        if path != QA_SOURCE and not Path(path).exists():
            raise FileNotFoundError(f"--distill-data {path}: no such file or directory")
        out.append((path, float(weight)))
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_pairs_file(path: str | Path) -> ParallelPairs:
    """Pairs from a multiway or pair JSONL file (a directory: its ``*.jsonl`` files).

    The two formats are told apart per row; a row of neither shape is an error naming it."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    pairs = ParallelPairs()
    for file in files:
        with file.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if isinstance(row.get("text"), dict):
                    group = str(row.get("doc_id") or row.get("id") or f"{file.name}:{n}")
                    texts = row["text"]
                    for lang, text in texts.items():
                        pairs.add(texts.get(PIVOT, ""), text, lang, group)
                elif "lang" in row and PIVOT in row and row["lang"] in row:
                    pairs.add(row[PIVOT], row[row["lang"]], row["lang"], row[PIVOT])
                else:
                    raise ValueError(
                        f"{file}:{n}: a parallel row needs 'text': {{lang: sentence}} "
                        f"or 'lang', '{PIVOT}' and a field named by 'lang'"
                    )
    if not pairs:
        raise ValueError(f"no {PIVOT}<->other pairs in {path}")
    return pairs


def question_pairs(pids, langs, questions) -> ParallelPairs:
    """English question -> each translation of it, from a question-passage table's columns."""
    english = {p: q for p, la, q in zip(pids, langs, questions, strict=True) if la == PIVOT}
    pairs = ParallelPairs()
    for p, la, q in zip(pids, langs, questions, strict=True):
        if p in english:
            pairs.add(english[p], q, la, f"qa:{p}", as_query=True)
    return pairs


class PairSampler:
    """Batches of pair indices: a source by weight, then pairs uniformly within it.

    Each pair is embedded with the query prefix with probability `query_share` (questions
    from the ``qa`` source always), so both prefixes get aligned.
    """

    def __init__(
        self,
        sources: list[ParallelPairs],
        weights: list[float],
        *,
        batch_size: int = 32,
        query_share: float = 0.5,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ):
        if not sources or any(len(s) == 0 for s in sources):
            raise ValueError("every distillation source needs at least one pair")
        self.sources = sources
        w = np.asarray(weights, dtype=float)
        self.probs = w / w.sum()
        self.batch_size, self.query_share, self.seed = batch_size, query_share, int(seed)
        self.rank, self.world_size, self.local = rank, world_size, start

    def batch(self, index: int) -> ParallelPairs:
        """Global batch `index`: the same on every rank and every run with this seed."""
        rng = np.random.default_rng([self.seed, index, 3])
        counts = rng.multinomial(self.batch_size, self.probs)
        out = ParallelPairs()
        for source, n in zip(self.sources, counts, strict=True):
            if n == 0:
                continue
            picks = rng.choice(len(source), size=min(n, len(source)), replace=False)
            flips = rng.random(len(picks)) < self.query_share
            for i, flip in zip(picks, flips, strict=True):
                out.add(source.en[i], source.other[i], source.lang[i], source.group[i],
                        source.as_query[i] or bool(flip))  # fmt: skip
        return out

    def __iter__(self) -> Iterator[ParallelPairs]:
        while True:
            yield self.batch(self.local * self.world_size + self.rank)
            self.local += 1
