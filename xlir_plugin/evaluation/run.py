"""`evaluate`: encode a LAReQA set once, rank with numpy and Elasticsearch, score like the paper."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .data import LareqaData, load_lareqa
from .metrics import average_precision, rank_distance, recall_at
from .retrieval import Layout, Ranks, es_ranks, exact_ranks

COLUMNS = ["mono", "cross", "multi", "r1_mono", "r1_cross", "r10_multi", "rank_distance"]


@dataclass
class BackendResult:
    """Macro-averaged figures of one backend, per query language and overall."""

    per_lang: dict[str, dict[str, float]]
    mean: dict[str, float]
    cross_map: dict[str, dict[str, float]]  # query lang -> candidate lang -> mAP
    seconds: float


@dataclass
class EvalResult:
    model: str
    data: str
    candidates: int
    queries: int
    settings: dict[str, Any]
    backends: dict[str, BackendResult] = field(default_factory=dict)
    gap: dict[str, float] = field(default_factory=dict)  # ES vs exact
    encode_seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        lines = [f"# {self.model} on {self.data}", ""]
        lines.append(
            f"{self.queries} queries, {self.candidates} candidates; settings: {self.settings}"
        )
        for name, res in self.backends.items():
            lines += ["", f"## {name} ({res.seconds:.0f} s)", ""]
            lines.append(
                "| lang | Mono | Cross | Multi | R@1 mono | R@1 cross | R@10 multi | rank dist |"
            )
            lines.append("|---|---|---|---|---|---|---|---|")
            for lang, row in [*res.per_lang.items(), ("**mean**", res.mean)]:
                cells = [_fmt(row.get(c)) for c in COLUMNS]
                lines.append(f"| {lang} | " + " | ".join(cells) + " |")
        if self.gap:
            lines += ["", "ES vs exact: " + ", ".join(f"{k} {v:+.4f}" for k, v in self.gap.items())]
        return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    if value is None or np.isnan(value):
        return "-"
    return f"{value:.1f}" if value > 1.5 else f"{value:.3f}"


def score(ranks: Ranks, depth: float, with_bias: bool, seconds: float) -> BackendResult:
    """Per-language rows and the paper's macro averages (Cross: over all language pairs)."""
    per_lang: dict[str, dict[str, float]] = {}
    cross_map: dict[str, dict[str, float]] = {}
    pair_maps: list[float] = []
    for x in ranks.langs:
        present = {y: r for (qx, y), r in ranks.pair.items() if qx == x and np.any(~np.isnan(r))}
        if not present:
            continue  # a language with candidates but no questions
        cross_map[x] = {
            y: _mean(average_precision(r[~np.isnan(r), None], depth)) for y, r in present.items()
        }
        others = [y for y in present if y != x]
        pair_maps += [cross_map[x][y] for y in others]
        mono = present.get(x)
        row = {
            "mono": cross_map[x].get(x, np.nan),
            "cross": _mean([cross_map[x][y] for y in others]),
            "r1_mono": _mean(recall_at(mono[~np.isnan(mono), None], 1))
            if mono is not None
            else np.nan,
            "r1_cross": _mean(
                [_mean(recall_at(present[y][~np.isnan(present[y]), None], 1)) for y in others]
            ),
        }
        if x in ranks.multi and len(ranks.multi[x]):
            row["multi"] = _mean(average_precision(ranks.multi[x], depth))
            row["r10_multi"] = _mean(recall_at(ranks.multi[x], 10))
            row["rank_distance"] = _mean(rank_distance(ranks.multi[x])) if with_bias else np.nan
        per_lang[x] = row
    mean = {c: _mean([r.get(c, np.nan) for r in per_lang.values()]) for c in COLUMNS}
    mean["cross"] = _mean(pair_maps)  # macro over the (X, Y) pairs, as the paper does
    return BackendResult(per_lang, mean, cross_map, seconds)


def _mean(values) -> float:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def evaluate(
    encoder,
    data_dir: str | Path,
    es=None,
    backends: tuple[str, ...] = ("exact", "es"),
    langs: list[str] | None = None,
    max_queries: int | None = None,
    context: bool = False,
    depth: int | None = None,
    es_depth: int = 100,
    num_candidates: int | None = None,
    index: str | None = None,
    keep_index: bool = False,
    index_options: dict | None = None,
) -> EvalResult:
    """Encode once, then rank with each backend over the very same vectors."""
    data = load_lareqa(data_dir, langs)
    if max_queries:
        data = _first_questions(data, max_queries)
    ordered = data.languages
    layout = Layout.build(data, ordered)

    start = time.perf_counter()
    texts = [f"{c.text} {c.context}" if context else c.text for c in data.candidates]
    cands = encoder.encode_passages(texts)
    queries = encoder.encode_queries([q.text for q in data.questions])
    result = EvalResult(
        model=encoder.model_name,
        data=str(data_dir),
        candidates=len(data.candidates),
        queries=len(data.questions),
        settings={"context": context, "depth": depth or "pool", "es_depth": es_depth},
        encode_seconds=round(time.perf_counter() - start, 1),
    )
    if "exact" in backends:
        start = time.perf_counter()
        exact = exact_ranks(layout, queries, cands)
        result.backends["exact"] = score(exact, depth or np.inf, True, time.perf_counter() - start)
    if "es" in backends:
        if es is None:
            raise ValueError("the es backend needs an Elasticsearch client")
        start = time.perf_counter()
        name = index or f"xlir-eval-{uuid.uuid4().hex[:8]}"
        index_candidates(es, name, encoder, data, cands, index_options)
        try:
            approx = es_ranks(es, name, layout, queries, es_depth, num_candidates)
        finally:
            if not keep_index:
                es.indices.delete(index=name)
        result.backends["es"] = score(approx, es_depth, False, time.perf_counter() - start)
        if "exact" in backends:
            result.gap = _gap(result, exact, approx)
    return result


def index_candidates(
    es, name: str, encoder, data: LareqaData, vectors: np.ndarray, index_options: dict | None = None
) -> None:
    """Index the candidates with the vectors already computed, so both backends rank the same."""
    from ..ingest import ingest

    docs = (
        {"id": c.id, "lang": c.lang, "text": c.text, "embedding": v.tolist()}
        for c, v in zip(data.candidates, vectors, strict=True)
    )
    report = ingest(es, name, encoder, docs, progress=False, index_options=index_options)
    if report.failed:
        raise RuntimeError(f"{report.failed} candidates failed to index: {report.failures[:3]}")


def _gap(result: EvalResult, exact: Ranks, approx: Ranks) -> dict[str, float]:
    """mAP deltas (ES - exact) and ANN recall@10: ES's share of the exact top 10 (multi pool)."""
    a, b = result.backends["es"].mean, result.backends["exact"].mean
    overlap = [
        len(e & s) / 10
        for x in exact.top10
        for e, s in zip(exact.top10[x], approx.top10[x], strict=True)
    ]
    return {
        "mono_map_delta": a["mono"] - b["mono"],
        "cross_map_delta": a["cross"] - b["cross"],
        "multi_map_delta": a["multi"] - b["multi"],
        "ann_recall_at_10": float(np.mean(overlap)),
    }


def _first_questions(data: LareqaData, n: int) -> LareqaData:
    """The first `n` question ids (all their translations) for quick runs; all candidates kept."""
    keep = set(sorted({q.id for q in data.questions})[:n])
    questions = [q for q in data.questions if q.id in keep]
    relevant = {qid: rel for qid, rel in data.relevant.items() if qid in keep}
    return LareqaData(data.candidates, questions, relevant)
