"""The main job: index the XQuAD-R multilingual pool and answer questions across languages.

Every step is the product's real path: the default int8 ONNX model, `ingest` into a
model-stamped index, and cross-lingual kNN `search` with a language pre-filter. `model` is an
`OnnxEncoder` (the client-side path) or an `EngineModel`: the model installed in
Elasticsearch, which then embeds the passages (ingest pipeline) and the questions (query
vector builder) itself, and Python sends text only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from elasticsearch import Elasticsearch

from .encoder import OnnxEncoder
from .engine import EngineModel, engine_ingest, engine_search
from .errors import ModelMismatch
from .index import check_index, delete_index, index_exists
from .ingest import ingest
from .ingest_report import IngestReport
from .search import Hit, search

DEMO_INDEX = "xlir-demo-xquad-r"
#: (query language, passage language): a German question answered in Arabic, Thai, English...
LANGUAGE_PAIRS = [
    ("de", "ar"), ("de", "th"), ("de", "en"), ("zh", "es"), ("hi", "ru"),
    ("en", "zh"), ("ar", "de"), ("tr", "vi"), ("ru", "el"), ("es", "hi"),
]  # fmt: skip


@dataclass
class Answer:
    """One sample question, the hits it got, and the rank of the known answer (None: not found)."""

    query_lang: str
    target_lang: str
    question: str
    answer_id: str
    hits: list[Hit]
    seconds: float

    @property
    def rank(self) -> int | None:
        ids = [hit.id for hit in self.hits]
        return ids.index(self.answer_id) + 1 if self.answer_id in ids else None

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "hits"}
        return data | {"rank": self.rank, "hits": [hit.as_dict() for hit in self.hits]}


@dataclass
class DemoResult:
    report: IngestReport | None
    documents: int
    answers: list[Answer] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def found(self) -> int:
        """Sample questions whose answer came back in the top 10."""
        return sum(answer.rank is not None for answer in self.answers)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def as_dict(self) -> dict[str, Any]:
        latency = {"queries": len(self.latencies_ms)}
        if self.latencies_ms:
            latency |= {"p50": round(self.percentile(50), 2), "p95": round(self.percentile(95), 2)}
        return {
            "indexed": self.report.as_dict() if self.report else None,
            "documents": self.documents,
            "found_in_top_10": self.found,
            "answers": [answer.as_dict() for answer in self.answers],
            "latency_ms": latency,
        }


Model = OnnxEncoder | EngineModel


def prepare_index(es: Elasticsearch, index: str, encoder: Model, expected_docs: int) -> bool:
    """True when `index` already holds the full pool for this model and can be reused.

    An index built for another model (or half built) is rebuilt: it is the demo's own.
    """
    if not index_exists(es, index):
        return False
    try:
        check_index(es, index, encoder.manifest)
    except ModelMismatch:
        delete_index(es, index)
        return False
    return es.count(index=index)["count"] == expected_docs


def ask(
    es: Elasticsearch,
    index: str,
    encoder: Model,
    text: str,
    lang: str,
    targets: Sequence[str],
    k: int = 10,
) -> tuple[list[Hit], float]:
    """One cross-lingual query, timed end to end (encode + search; in the engine: both)."""
    start = time.perf_counter()
    if isinstance(encoder, EngineModel):
        hits = engine_search(
            es, index, encoder, text, "cross", lang, list(targets), k=k, check=False
        )
    else:
        hits = search(es, index, encoder, text, mode="cross", lang=lang, targets=list(targets), k=k)
    return hits, time.perf_counter() - start


def run_pool_demo(
    es: Elasticsearch,
    encoder: Model,
    data_dir: Path,
    index: str = DEMO_INDEX,
    latency_queries: int = 100,
) -> DemoResult:
    """Index the pool (or reuse it), answer the sample questions, time a batch of queries."""
    from .evaluation.data import load_lareqa

    data = load_lareqa(data_dir)
    docs = [{"id": c.id, "lang": c.lang, "text": c.text} for c in data.candidates]
    report = None
    if not prepare_index(es, index, encoder, len(docs)):
        if isinstance(encoder, EngineModel):
            report = engine_ingest(es, index, encoder, docs)
        else:
            report = ingest(es, index, encoder, docs)
    result = DemoResult(report=report, documents=es.count(index=index)["count"])

    question_ids = sorted(data.questions_by_id)
    step = max(1, len(question_ids) // len(LANGUAGE_PAIRS))
    for i, (src, dst) in enumerate(LANGUAGE_PAIRS):
        qid = question_ids[i * step]
        question = data.questions_by_id[qid][src]
        hits, seconds = ask(es, index, encoder, question.text, src, [dst])
        result.answers.append(
            Answer(src, dst, question.text, data.relevant[qid][dst], hits, seconds)
        )

    rng = np.random.default_rng(0)
    langs = sorted(data.languages)
    for qid in rng.choice(
        question_ids, size=min(latency_queries, len(question_ids)), replace=False
    ):
        src, dst = rng.choice(langs, size=2, replace=False)
        _, seconds = ask(es, index, encoder, data.questions_by_id[qid][src].text, src, [dst])
        result.latencies_ms.append(seconds * 1000)
    return result
