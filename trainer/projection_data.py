"""The vectors a projection head trains on: the frozen encoder's output for the training sets.

A `VectorSet` is an example table in vector form: per row a parallel id, a language, a group
(rows of one group never share a batch), the query's vector and its passage's vector. The
sources, all TRAINING data (never XQuAD-R):

- squad-dev-parallel: question -> the sentence holding its answer (4 languages; the sentence
  alone, as `xlir eval` encodes XQuAD-R candidates); group = the paragraph's group.
- NTREX-128: a news sentence as query -> the same sentence as passage (11 languages, all of
  XQuAD-R's; 11-way parallel, so X-Y pairs exist between every two languages).
- Tatoeba (optional): short everyday sentences, English and its translations (10 languages).

Encoding is the slow part (2 cores: ~15 minutes for squad and 1,200 NTREX sentences), so the
vectors are cached in the output directory under the model's sha256 and the very texts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xlir_plugin.evaluation.data import Candidate, LareqaData, Question
from xlir_plugin.evaluation.vectors import encode


@dataclass
class TextSet:
    """Rows before encoding: one query text and one passage text per row."""

    name: str
    pids: list[str]
    langs: list[str]
    groups: np.ndarray
    queries: list[str]
    passages: list[str]


@dataclass
class VectorSet:
    name: str
    pids: np.ndarray
    langs: np.ndarray
    groups: np.ndarray
    queries: np.ndarray  # (rows, dim) unit vectors
    passages: np.ndarray  # (rows, dim)
    passage_keys: np.ndarray  # rows sharing a key share one passage (validation candidates)
    # True when query and passage are the same text (parallel sentences): an X-X pair of it
    # teaches nothing, so the set gives X-Y batches only
    xy_only: bool = False

    def select(self, rows: np.ndarray) -> VectorSet:
        return VectorSet(
            self.name,
            *(a[rows] for a in (self.pids, self.langs, self.groups, self.queries)),
            self.passages[rows],
            self.passage_keys[rows],
            self.xy_only,
        )

    def split(self, val_fraction: float, seed: int = 0) -> tuple[VectorSet, VectorSet]:
        """(train, validation): a seeded share of the groups held out whole."""
        groups = np.unique(self.groups)
        held = np.random.default_rng([seed, 7]).permutation(groups)
        held = held[: max(1, int(round(len(groups) * val_fraction)))]
        is_val = np.isin(self.groups, held)
        return self.select(np.flatnonzero(~is_val)), self.select(np.flatnonzero(is_val))

    def as_lareqa(self) -> tuple[LareqaData, np.ndarray, np.ndarray]:
        """This set as a LAReQA retrieval task (each query's relevant passage in every
        language), with (query vectors, candidate vectors): validation scores it exactly as
        `xlir eval` scores XQuAD-R."""
        _, first = np.unique(self.passage_keys, return_index=True)
        data = LareqaData()
        for i in first:
            key = str(self.passage_keys[i])
            data.candidates.append(Candidate(key, str(self.langs[i]), "", ""))
        for pid, lang, key in zip(self.pids, self.langs, self.passage_keys, strict=True):
            data.questions.append(Question(str(pid), str(lang), ""))
            data.relevant[str(pid)][str(lang)] = str(key)
        return data, self.queries, self.passages[first]


def squad_texts(path: Path) -> TextSet:
    from trainer.data import load_examples

    table = load_examples(path, unit="sentence")
    ds = table.ds
    return TextSet(
        "squad-dev-parallel",
        list(ds["pid"]),
        list(ds["lang"]),
        table.groups,
        list(ds["question"]),
        list(ds["passage"]),
    )


def parallel_texts(path: Path, name: str, max_ids: int = 0, seed: int = 0) -> TextSet:
    """Multi-way parallel sentences (JSONL rows `{"id", "text": {lang: sentence}}`): each
    language of each row (or of a seeded `max_ids` rows) as query and passage; group = row."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if max_ids and max_ids < len(rows):
        keep = np.sort(np.random.default_rng(seed).permutation(len(rows))[:max_ids])
        rows = [rows[i] for i in keep]
    cells = [
        (g, r["id"], lang, r["text"][lang])
        for g, r in enumerate(rows)
        for lang in sorted(r["text"])
    ]
    groups, pids, langs, texts = (list(c) for c in zip(*cells, strict=True))
    return TextSet(name, pids, langs, np.asarray(groups), texts, texts)


def ntrex_texts(path: Path, max_ids: int = 0, seed: int = 0) -> TextSet:
    """NTREX-128: 11-way parallel, every XQuAD-R language in every row."""
    return parallel_texts(path, "ntrex128", max_ids, seed)


def tatoeba_texts(path: Path) -> TextSet:
    """Tatoeba grouped by identical English sentence: English plus 1-10 languages per row."""
    return parallel_texts(path, "tatoeba")


def encode_set(encoder, texts: TextSet, cache_dir: Path, progress: bool = True) -> VectorSet:
    """Vectors of `texts` under `encoder` (an OnnxEncoder), from the cache when it has them."""
    digest = hashlib.sha256(encoder.manifest.sha256.encode())
    for text in (*texts.queries, "\x01", *texts.passages):
        digest.update(text.encode() + b"\x00")
    cache = Path(cache_dir) / f"vectors-{texts.name}-{digest.hexdigest()[:16]}.npz"
    unique_passages, passage_rows = np.unique(np.asarray(texts.passages), return_inverse=True)
    if cache.is_file():
        with np.load(cache) as saved:
            queries, passages = saved["queries"], saved["passages"]
    else:
        queries = encode(encoder, texts.queries, "query", progress=progress)
        passages = encode(encoder, list(unique_passages), "passage", progress=progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, queries=queries, passages=passages)
    keys = np.array([f"{lang}:{p}" for lang, p in zip(texts.langs, passage_rows, strict=True)])
    return VectorSet(
        texts.name,
        np.asarray(texts.pids, dtype=object),
        np.asarray(texts.langs, dtype=object),
        np.asarray(texts.groups, dtype=np.int64),
        queries,
        passages[passage_rows],
        keys,
        xy_only=texts.queries == texts.passages,
    )
