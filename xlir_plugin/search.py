"""kNN search over an XLIR index: language modes, exact rescoring, optional hybrid BM25.

Modes:
- `multilingual`: the whole pool, any language;
- `cross`: passages in the target language(s) only;
- `mono`: passages in the query's language only.
The language filter sits inside the kNN clause, so it is a pre-filter: `k` hits come back
even when the wanted language is a small part of the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .engines import ELASTICSEARCH, Client, Engine, EngineApiError, TextQuery, engine_of
from .errors import InputError, XlirError
from .fusion import RANK_CONSTANT, rrf
from .index import cached_meta
from .passages import UNRETURNED, inner_hits, passages_of
from .schema import PASSAGES_FIELD, QUANTIZED_TYPES, VECTOR_FIELD, check_dims, check_meta

if TYPE_CHECKING:
    from .encoder import OnnxEncoder

MODES = ("multilingual", "cross", "mono")
MAX_NUM_CANDIDATES = 10_000
CORE_FIELDS = ("id", "lang", "text", VECTOR_FIELD, PASSAGES_FIELD)
#: all a single search reads from the response (`filter_path`): less JSON to send and parse
HIT_FIELDS = "hits.hits._id,hits.hits._score,hits.hits._source,hits.hits.inner_hits"


@dataclass
class Hit:
    id: str
    score: float
    lang: str | None
    text: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    #: a chunked index: the best passages, best first: {start, end, score, text}
    passages: list[dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "score": self.score, "lang": self.lang, "text": self.text}
        if self.passages is not None:
            out["passages"] = self.passages
        return out | self.fields


# -- query building ---------------------------------------------------------------------------


def _langs(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if not isinstance(item, str):
            raise InputError(f"language codes must be strings, got {item!r}")
        if item.strip():
            out.append(item.strip().lower())
    return out


def lang_filter(
    mode: str, lang: str | None = None, targets: str | Sequence[str] | None = None
) -> dict[str, Any] | None:
    """The language filter for a mode (the same query on both engines), or None for the whole
    pool."""
    if mode not in MODES:
        raise InputError(
            f"{{mode}} must be one of {', '.join(MODES)}; got {mode!r}", arguments=["mode"]
        )
    targets = _langs(targets)
    query_lang = _langs(lang)
    if len(query_lang) > 1:
        raise InputError(f"{{lang}} is the query's one language, got {lang!r}", arguments=["lang"])
    if mode == "multilingual":
        if targets:
            raise InputError(
                "{targets} applies to {mode=cross} only ({mode=multilingual} searches them all)",
                arguments=["targets", "mode"],
            )
        return None
    if mode == "cross":
        if not targets:
            raise InputError(
                "{mode=cross} needs the passage languages, e.g. {targets=en,es}",
                arguments=["mode", "targets"],
            )
        return {"terms": {"lang": targets}}
    if not query_lang:
        raise InputError(
            "{mode=mono} needs the query language, e.g. {lang=de}", arguments=["mode", "lang"]
        )
    if targets and targets != query_lang:
        raise InputError(
            "{mode=mono} searches the query language only: drop {targets}",
            arguments=["mode", "targets"],
        )
    return {"term": {"lang": query_lang[0]}}


def default_num_candidates(k: int) -> int:
    return min(MAX_NUM_CANDIDATES, max(100, 10 * k))


def _check_k(k: int, num_candidates: int | None) -> int:
    if not isinstance(k, int) or k < 1:
        raise InputError(f"{{k}} must be a positive integer, got {k!r}", arguments=["k"])
    n = default_num_candidates(k) if num_candidates is None else num_candidates
    if not isinstance(n, int) or not k <= n <= MAX_NUM_CANDIDATES:
        raise InputError(
            f"{{num_candidates}} must be between {{k}} ({k}) and {MAX_NUM_CANDIDATES}, got {n}",
            arguments=["num_candidates", "k"],
        )
    return n


def knn_body(
    vector: Sequence[float] | TextQuery,
    k: int,
    num_candidates: int | None = None,
    filters: Sequence[dict[str, Any]] = (),
    rescore: bool | float | None = None,
    index_type: str | None = None,
    source: Sequence[str] | None = None,
    engine: Engine = ELASTICSEARCH,
    chunked: bool = False,
) -> dict[str, Any]:
    """A search body with `engine`'s `knn` query (filters inside it: pre-filtering) for a
    vector, or for a `TextQuery` the engine's xlir plugin embeds.

    chunked: the index holds passages (`passages.embedding`, nested): the `k` documents with
    the nearest passages, each scored by its best one, its `PASSAGE_HITS` best passages'
    offsets in `inner_hits` (`passages_of` reads them).

    The `knn` query, not the top-level `knn` section: both give each shard's top k and the
    same hits, but the section first runs a DFS phase of its own, one more round in the node.

    rescore: None leaves the index default; a float oversamples by that factor and rescores
    the candidates with the full-precision vectors; True means 3.0; False/0 turns it off.
    Only sent when the index type quantizes (`index_type` in QUANTIZED_TYPES).
    """
    n = _check_k(k, num_candidates)
    oversample = None
    if rescore is not None and index_type in QUANTIZED_TYPES:
        oversample = 3.0 if rescore is True else float(rescore or 0.0)
        if oversample and oversample < 1.0:
            raise InputError(
                f"{{rescore}} (the oversample factor) must be >= 1, or 0 to disable; got {rescore}",
                arguments=["rescore"],
            )
    query = vector if isinstance(vector, TextQuery) else [float(x) for x in vector]
    if chunked:
        search = engine.nested_knn(query, k, n, filters, oversample, inner_hits())
    else:
        search = {"query": engine.knn_clause(query, k, n, filters, oversample)}
    return search | {
        "size": k,
        "track_total_hits": False,
        "_source": list(source) if source is not None else {"excludes": UNRETURNED},
    }


def bm25_body(
    text: str,
    size: int,
    filters: Sequence[dict[str, Any]] = (),
    source: Sequence[str] | None = None,
) -> dict[str, Any]:
    return {
        "query": {"bool": {"must": [{"match": {"text": text}}], "filter": list(filters)}},
        "size": size,
        "track_total_hits": False,
        "_source": list(source) if source is not None else {"excludes": UNRETURNED},
    }


def to_hit(raw: dict[str, Any]) -> Hit:
    src = raw.get("_source") or {}
    return Hit(
        id=str(src.get("id", raw["_id"])),
        score=float(raw.get("_score") or 0.0),
        lang=src.get("lang"),
        text=src.get("text"),
        fields={k: v for k, v in src.items() if k not in CORE_FIELDS},
        passages=passages_of(raw, src.get("text")),
    )


# -- search -----------------------------------------------------------------------------------


def _vector(vector: Any) -> list[float]:
    arr = np.asarray(vector, dtype=np.float32)
    if arr.ndim != 1 or not arr.size:
        raise InputError(f"a query vector must be 1-D and non-empty, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError("the query vector holds NaN or infinity")
    return arr.tolist()


def _filters(mode, lang, targets, filter) -> list[dict[str, Any]]:
    out = []
    lf = lang_filter(mode, lang, targets)
    if lf:
        out.append(lf)
    if filter:
        out.extend(filter if isinstance(filter, list) else [filter])
    return out


def _reason(error: Any) -> Any:
    """The first root cause's reason of an engine's error body, else its own reason."""
    if not isinstance(error, dict):
        return error
    if error.get("root_cause"):
        return error["root_cause"][0].get("reason", error.get("reason"))
    return error.get("reason")


def _search(es: Client, index: str, body: dict[str, Any]) -> list[Hit]:
    """One search: `_search`, not `_msearch`, which takes the request through one more
    thread pool in the node; the response is filtered to what `to_hit` reads."""
    try:
        resp = engine_of(es).search(es, index, body, filter_path=HIT_FIELDS)
    except EngineApiError as exc:
        error = exc.body.get("error") if isinstance(exc.body, dict) else None
        raise XlirError(f"search on {index!r} failed: {_reason(error) or exc}") from None
    return [to_hit(h) for h in resp.get("hits", {}).get("hits", [])]


def _msearch(es: Client, index: str, bodies: list[dict[str, Any]]) -> list[list[Hit]]:
    try:
        responses = engine_of(es).msearch(es, index, bodies)
    except EngineApiError as exc:
        raise XlirError(f"search on {index!r} failed: {exc}") from None
    out = []
    for i, r in enumerate(responses):
        if "error" in r:
            raise XlirError(f"search {i} on {index!r} failed: {_reason(r['error'])}")
        out.append([to_hit(h) for h in r["hits"]["hits"]])
    return out


def search_vector(
    es: Client,
    index: str,
    vector: Sequence[float],
    mode: str = "multilingual",
    lang: str | None = None,
    targets: str | Sequence[str] | None = None,
    k: int = 10,
    num_candidates: int | None = None,
    rescore: bool | float | None = None,
    filter: dict[str, Any] | list[dict[str, Any]] | None = None,
    source: Sequence[str] | None = None,
    hybrid_text: str | None = None,
    rrf_window: int | None = None,
) -> list[Hit]:
    """kNN search with a precomputed query vector (dims checked against the index).

    hybrid_text: also run BM25 on `text` with this query and fuse both rankings with
    reciprocal rank fusion (each list `rrf_window` deep, default max(k, 50)).
    """
    meta = cached_meta(es, index)
    vec = _vector(vector)
    check_dims(index, meta, len(vec))
    filters = _filters(mode, lang, targets, filter)
    index_type = (meta.get("index_options") or {}).get("type")
    engine = engine_of(es)
    chunked = bool(meta.get("chunking"))
    if not hybrid_text:
        body = knn_body(
            vec, k, num_candidates, filters, rescore, index_type, source, engine, chunked
        )
        return _search(es, index, body)
    window = max(k, rrf_window or 50)
    n = max(window, num_candidates or default_num_candidates(window))
    n = min(n, MAX_NUM_CANDIDATES)
    knn = knn_body(vec, window, n, filters, rescore, index_type, source, engine, chunked)
    bm25 = bm25_body(hybrid_text, window, filters, source)
    dense, sparse = _msearch(es, index, [knn, bm25])
    return [
        Hit(h.id, score, h.lang, h.text, h.fields, h.passages)
        for h, score in rrf([dense, sparse], k=k, rank_constant=RANK_CONSTANT, key=lambda h: h.id)
    ]


def search(
    es: Client,
    index: str,
    encoder: OnnxEncoder,
    text: str,
    mode: str = "multilingual",
    lang: str | None = None,
    targets: str | Sequence[str] | None = None,
    k: int = 10,
    num_candidates: int | None = None,
    rescore: bool | float | None = None,
    hybrid: bool = False,
    filter: dict[str, Any] | list[dict[str, Any]] | None = None,
    source: Sequence[str] | None = None,
) -> list[Hit]:
    """Embed `text` as a query and search `index` (which must be stamped with the same model).

    mode: multilingual | cross (needs `targets`, e.g. "en,es") | mono (needs `lang`).
    hybrid: fuse BM25 on `text` with the kNN ranking (client-side RRF); off by default.
    """
    lang_filter(mode, lang, targets)  # bad arguments fail before any request
    _check_k(k, num_candidates)
    check_meta(index, cached_meta(es, index), encoder.manifest)
    vector = encoder.encode_queries([text])[0]
    return search_vector(
        es,
        index,
        vector,
        mode,
        lang,
        targets,
        k,
        num_candidates,
        rescore,
        filter,
        source,
        hybrid_text=text if hybrid else None,
    )


def search_vectors(
    es: Client,
    index: str,
    vectors: Any,
    mode: str = "multilingual",
    lang: str | Sequence[str | None] | None = None,
    targets: str | Sequence[str] | None = None,
    k: int = 10,
    num_candidates: int | None = None,
    rescore: bool | float | None = None,
    filter: dict[str, Any] | list[dict[str, Any]] | None = None,
    source: Sequence[str] | None = ("id", "lang"),
    batch_size: int = 100,
) -> list[list[Hit]]:
    """Many kNN searches through `_msearch`, `batch_size` per request (for evaluation).

    vectors: (n, dims) array or list of vectors. lang: one language for all queries or one
    per query (needed per query for mode 'mono'). source: fields to return (default id and
    lang only, which is all ranking metrics need; None for everything but the vector).
    """
    meta = cached_meta(es, index)
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim != 2:
        raise InputError(f"vectors must be a 2-D array (n, dims), got shape {arr.shape}")
    check_dims(index, meta, arr.shape[1])
    if not np.isfinite(arr).all():
        raise InputError("query vectors hold NaN or infinity")
    if lang is None or isinstance(lang, str):
        langs: list[str | None] = [lang] * len(arr)
    else:
        langs = list(lang)
        if len(langs) != len(arr):
            raise InputError(f"{len(langs)} languages for {len(arr)} query vectors")
    index_type = (meta.get("index_options") or {}).get("type")
    engine = engine_of(es)
    filter_cache: dict[str | None, list[dict[str, Any]]] = {}
    results: list[list[Hit]] = []
    for start in range(0, len(arr), batch_size):
        bodies = []
        for vec, query_lang in zip(
            arr[start : start + batch_size], langs[start : start + batch_size], strict=True
        ):
            if query_lang not in filter_cache:
                filter_cache[query_lang] = _filters(mode, query_lang, targets, filter)
            bodies.append(
                knn_body(
                    vec.tolist(),
                    k,
                    num_candidates,
                    filter_cache[query_lang],
                    rescore,
                    index_type,
                    source,
                    engine,
                    bool(meta.get("chunking")),
                )
            )
        results.extend(_msearch(es, index, bodies))
    return results
