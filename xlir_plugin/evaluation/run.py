"""`evaluate`: encode a LAReQA set once, rank with numpy and Elasticsearch, score like the paper.

Each backend ranks the very same vectors (`vectors.py`); `scoring.py` turns the ranks into the
paper's macro-averaged figures, gathered in an `EvalResult` (`result.py`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data import LareqaData, first_questions, load_lareqa
from .result import EvalResult
from .retrieval import BackendRun, Layout, es_backend, exact_backend
from .scoring import es_gap, metrics_for, score
from .vectors import candidate_texts, encode, load_vectors, save_vectors, vectors_key

BACKENDS = ("exact", "es")


def evaluate_vectors(
    data: LareqaData,
    queries: np.ndarray,
    cands: np.ndarray,
    *,
    model: str = "vectors",
    manifest=None,
    es=None,
    backends: Sequence[str] = BACKENDS,
    depth: int | None = None,
    es_depth: int = 100,
    num_candidates: int | None = None,
    index: str | None = None,
    keep_index: bool = False,
    index_options: dict | str | None = None,
    data_name: str = "",
    progress: bool = True,
) -> EvalResult:
    """The evaluation core over precomputed vectors (rows aligned with data.questions and
    data.candidates; L2-normalised so that dot product = cosine, the index's similarity)."""
    backends = tuple(backends)
    unknown = set(backends) - set(BACKENDS)
    if unknown or not backends:
        raise ValueError(f"backends must be a non-empty subset of {BACKENDS}, got {backends}")
    if "es" in backends and es is None:
        raise ValueError("the es backend needs an Elasticsearch client")
    queries = np.asarray(queries, dtype=np.float32)
    cands = np.asarray(cands, dtype=np.float32)
    if len(queries) != len(data.questions) or len(cands) != len(data.candidates):
        raise ValueError("vectors must be aligned with data.questions and data.candidates")
    layout = Layout.build(data)
    full_map, exact_metrics = metrics_for(depth, es_depth if "es" in backends else None)
    result = EvalResult(
        model=model,
        data=data_name,
        candidates=len(data.candidates),
        queries=len(data.questions),
        languages=layout.langs,
        settings={"depth": depth or "pool", "backends": ",".join(backends)},
        notes=[
            "Rank distance needs full ranks over the whole multilingual pool: it is computed "
            "on the exact backend only, over queries with >= 2 relevant candidates.",
            "Exact ranking breaks score ties by candidate position.",
            "R@10 multi = share of a query's relevant candidates (one per language) in its "
            f"top 10 of the pool (ranx recall@10), {_r10_ceiling(len(layout.langs))}.",
        ],
    )
    runs: dict[str, BackendRun] = {}
    if "exact" in backends:
        runs["exact"] = exact_backend(
            layout, queries, cands, exact_metrics, depth, progress=progress
        )
        result.backends["exact"] = score(runs["exact"], full_map, layout)
        result.timings["exact"] = runs["exact"].seconds
    if "es" in backends:
        from ..engines import engine_of

        engine = engine_of(es).label  # the `es` backend is the engine's kNN, either engine
        result.settings.update(
            engine=engine, es_depth=es_depth, num_candidates=num_candidates or "default"
        )
        result.notes.append(
            f"{engine} returns its top {es_depth} per query: AP counts a relevant "
            f"candidate outside them as 0 (mAP = ranx map@{es_depth})."
        )
        name = index or f"xlir-eval-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        index_type = index_vectors(es, name, data, cands, manifest, index_options, progress)
        result.settings["index_options"] = index_type
        result.timings["es_index"] = time.perf_counter() - started
        try:
            es_map = f"map@{es_depth}"
            runs["es"] = es_backend(
                es, name, layout, queries, [es_map, "recall@1", "recall@10"], es_depth,
                num_candidates, progress=progress,
            )  # fmt: skip
        finally:
            if not keep_index:
                from ..index import delete_index

                delete_index(es, name)
        result.backends["es"] = score(runs["es"], es_map, layout)
        result.timings["es_query"] = runs["es"].seconds
        if "exact" in runs:
            result.gap = es_gap(runs["exact"], runs["es"], layout, es_map, full_map)
    return result


def _r10_ceiling(languages: int) -> str:
    """What R@10 multi can reach when each query has one relevant candidate per language."""
    if languages <= 10:
        return f"which can reach 1 with {languages} languages"
    return f"so at most 10/{languages} with {languages} languages"


def index_vectors(
    es,
    name: str,
    data: LareqaData,
    vectors: np.ndarray,
    manifest=None,
    index_options: dict | str | None = None,
    progress: bool = False,
) -> dict:
    """Index the candidates with the vectors already computed, so both backends rank the same.

    Returns the vector field's effective `index_options`.
    """
    from ..index import create_index
    from ..ingest import ingest

    if manifest is None:
        from ..manifest import Manifest

        manifest = Manifest(
            source_model="precomputed-vectors", dim=int(vectors.shape[1]), sha256=""
        )
    meta = create_index(es, name, manifest, index_options)
    docs = (
        {"id": c.id, "lang": c.lang, "text": c.text, "embedding": v.tolist()}
        for c, v in zip(data.candidates, vectors, strict=True)
    )
    report = ingest(es, name, None, docs, progress=progress, create=False)
    if report.failed:
        raise RuntimeError(f"{report.failed} candidates failed to index: {report.failures[:3]}")
    return meta.get("index_options", {})


def evaluate(
    model,
    data_dir: str | Path,
    es=None,
    backends: Sequence[str] = BACKENDS,
    langs: Sequence[str] | None = None,
    max_queries: int | None = None,
    context: bool = False,
    depth: int | None = None,
    es_depth: int = 100,
    num_candidates: int | None = None,
    index: str | None = None,
    keep_index: bool = False,
    index_options: dict | str | None = None,
    threads: int | None = None,
    progress: bool = True,
    vectors_cache: str | Path | None = None,
) -> EvalResult:
    """Evaluate `model` (an OnnxEncoder, or an exported model dir) on a LAReQA directory.

    Encodes questions and candidates once; each backend ranks those very vectors.
    depth: mAP depth of the exact backend (None: the whole pool). es_depth: kNN k.
    max_queries: the first N questions of each language (quick runs; all candidates kept).
    vectors_cache: an .npz file; reused when it holds this model's vectors for these very
    texts, else written after encoding (re-scoring without re-encoding).
    """
    if isinstance(model, (str, Path)):
        from ..encoder import OnnxEncoder

        model = OnnxEncoder(model, threads=threads)
    started = time.perf_counter()
    data = load_lareqa(data_dir, list(langs) if langs else None)
    if max_queries:
        data = first_questions(data, max_queries)
    cand_texts = candidate_texts(data, context)
    query_texts = [q.text for q in data.questions]
    keys = {"cands": vectors_key(model, cand_texts), "queries": vectors_key(model, query_texts)}
    cached = load_vectors(vectors_cache, keys)
    cands = cached.get("cands")
    if cands is None:
        cands = encode(model, cand_texts, "passage", progress=progress)
    queries = cached.get("queries")
    if queries is None:
        queries = encode(model, query_texts, "query", progress=progress)
    if vectors_cache and len(cached) < 2:
        save_vectors(vectors_cache, keys, cands, queries)
    encode_seconds = time.perf_counter() - started
    result = evaluate_vectors(
        data, queries, cands, model=model.model_name, manifest=model.manifest, es=es,
        backends=backends, depth=depth, es_depth=es_depth, num_candidates=num_candidates,
        index=index, keep_index=keep_index, index_options=index_options,
        data_name=str(data_dir), progress=progress,
    )  # fmt: skip
    result.settings = {
        "candidates": "sentence+paragraph" if context else "sentence",
        "max_queries": max_queries or "all",
        **result.settings,
    }
    sides = "cached" if len(cached) == 2 else " ".join([*cached, "cached"])
    result.settings["vectors"] = sides if cached else "encoded"
    result.timings = {
        "encode": encode_seconds,
        **result.timings,
        "total": time.perf_counter() - started,
    }
    return result
