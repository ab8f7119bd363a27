"""Batches -> tokenized tensors: question-passage batches and parallel-pair batches."""

from __future__ import annotations

from trainer.config import TrainConfig
from trainer.data import ExampleTable
from trainer.parallel import ParallelPairs
from trainer.samplers import Batch


def _move(enc, device) -> dict:
    return {k: v.to(device) for k, v in enc.items()}


def collate(tokenizer, table: ExampleTable, batch: Batch, cfg: TrainConfig, device) -> tuple:
    """Tokenised (queries, passages) of a batch. Sentence passages carry their paragraph as
    the second segment of a text pair (LAReQA style) unless `cfg.passage_context` is off."""
    q_rows = table.rows(batch.query_rows)
    p_rows = q_rows if batch.kind == "xx" else table.rows(batch.passage_rows)
    kw = {"truncation": True, "padding": True, "return_tensors": "pt"}
    q = tokenizer(
        [cfg.q_prefix + x for x in q_rows["question"]], max_length=cfg.max_query_length, **kw
    )
    passages = [cfg.p_prefix + x for x in p_rows["passage"]]
    if cfg.passage_context and any(p_rows["context"]):
        p = tokenizer(passages, p_rows["context"], max_length=cfg.max_passage_length, **kw)
    else:
        p = tokenizer(passages, max_length=cfg.max_passage_length, **kw)
    return _move(q, device), _move(p, device)


def collate_pairs(tokenizer, pairs: ParallelPairs, cfg: TrainConfig, device) -> tuple:
    """(student inputs: the translations then their English texts, teacher inputs: the
    English texts), each text with the query or the passage prefix as the pair says."""
    prefixes = [cfg.q_prefix if q else cfg.p_prefix for q in pairs.as_query]
    other = [f + t for f, t in zip(prefixes, pairs.other, strict=True)]
    english = [f + t for f, t in zip(prefixes, pairs.en, strict=True)]
    kw = {"truncation": True, "padding": True, "return_tensors": "pt"}
    length = max(cfg.max_query_length, cfg.max_passage_length)
    student = tokenizer(other + english, max_length=length, **kw)
    teacher = tokenizer(english, max_length=length, **kw)
    return _move(student, device), _move(teacher, device)
