"""Long documents measured: truncation vs passages vs passages with overlap (issue #25).

    python -m benchmarks.long_documents [--out results/long-documents.md]

A document-level cross-lingual task from XQuAD-R (evaluation only: nothing is tuned on it):
each article of each language file (its 5 paragraphs, joined by blank lines) is a document,
the questions are the queries, and the relevant documents are the question's article in every
language. Mono/Cross/Multi mAP and rank distance are `xlir eval`'s (`evaluation.scoring`),
over documents instead of sentences; a chunked document scores as its best passage, as the
nested kNN search scores it.

Each configuration is indexed through `ingest` into the local Elasticsearch node (the ingest
time is the whole `xlir index` path: chunking, encoding, bulk); the index is force-merged to
one segment for its store size; the vectors it holds are read back and ranked exactly with
numpy for the quality columns; and the engine's own top 10 (multilingual pool) is compared with
the exact top 10 for a sample of queries.

The default passage length is chosen before XQuAD-R is looked at, on a set built the same way
from squad-dev-parallel (training data: SQuAD dev paragraphs without any XQuAD paragraph, en and
es): documents of 5 consecutive paragraphs of an article, its questions as queries.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np

from xlir_plugin.chunking import Chunker, ChunkSettings
from xlir_plugin.evaluation.data import Candidate, LareqaData, Question
from xlir_plugin.evaluation.retrieval import MULTI, Layout, exact_backend
from xlir_plugin.evaluation.scoring import score
from xlir_plugin.paths import data_dir

METRICS = ["map", "recall@1", "recall@10"]
XQUAD_LANGS = ["ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"]
#: (name, chunking) rows of the XQuAD-R table
ROWS = [
    ("truncated at 512 tokens (one vector per document)", None),
    ("passages of 256 tokens", ChunkSettings(256)),
    ("passages of 256 tokens, overlap 32", ChunkSettings(256, 32)),
    ("passages of 128 tokens", ChunkSettings(128)),
]
CANDIDATE_N = (128, 256)


# -- the task ---------------------------------------------------------------------------------


def xquad_documents(langs=XQUAD_LANGS) -> tuple[LareqaData, list[dict]]:
    """Articles as documents ("{lang}:{article}"), questions as queries."""
    data = LareqaData()
    docs = []
    for lang in langs:
        squad = json.loads((data_dir() / "xquad-r" / f"{lang}.json").read_text())
        for a, article in enumerate(squad["data"]):
            doc_id = f"{lang}:{a}"
            text = "\n\n".join(p["context"] for p in article["paragraphs"])
            docs.append({"id": doc_id, "lang": lang, "text": text})
            data.candidates.append(Candidate(doc_id, lang, text, ""))
            for p in article["paragraphs"]:
                for qa in p["qas"]:
                    data.questions.append(Question(qa["id"], lang, qa["question"]))
                    for other in langs:
                        data.relevant[qa["id"]][other] = f"{other}:{a}"
    return data, docs


def squad_documents(langs=("en", "es"), group: int = 5, groups: int = 3, per_lang: int = 400):
    """squad-dev-parallel (training data): the first `groups` runs of `group` paragraphs of
    each article per language as documents; up to `per_lang` questions per language whose
    document exists in every language."""
    where: dict[str, dict[str, str]] = defaultdict(dict)
    texts: dict[str, dict] = {}
    questions: dict[str, dict[str, str]] = defaultdict(dict)
    for lang in langs:
        squad = json.loads((data_dir() / "squad-dev-parallel" / f"{lang}.json").read_text())
        for a, article in enumerate(squad["data"]):
            paragraphs = article["paragraphs"][: group * groups]
            for g in range(0, len(paragraphs), group):
                doc_id = f"{lang}:{a}:{g // group}"
                part = paragraphs[g : g + group]
                texts[doc_id] = {
                    "id": doc_id,
                    "lang": lang,
                    "text": "\n\n".join(p["context"] for p in part),
                }
                for p in part:
                    for qa in p["qas"]:
                        where[qa["id"]][lang] = doc_id
                        questions[lang][qa["id"]] = qa["question"]
    data = LareqaData()
    for doc in texts.values():
        data.candidates.append(Candidate(doc["id"], doc["lang"], doc["text"], ""))
    for lang in langs:
        everywhere = [q for q in questions[lang] if len(where[q]) == len(langs)]
        for qid in everywhere[:per_lang]:
            data.questions.append(Question(qid, lang, questions[lang][qid]))
            data.relevant[qid] = dict(where[qid])
    return data, list(texts.values())


# -- ranking documents by their best passage --------------------------------------------------


def evaluate(layout: Layout, queries: np.ndarray, passages: np.ndarray, owner: np.ndarray):
    """The paper's figures for documents scored by their best passage (`owner[i]`: the
    document of passage i; one passage per document is plain truncation)."""
    n_docs = len(layout.cand_ids)
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], np.arange(n_docs))
    sorted_passages = passages[order]

    def best_passage(rows: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(queries[rows] @ sorted_passages.T, starts, axis=1)

    placeholder = np.zeros((n_docs, 1), dtype=np.float32)
    run = exact_backend(layout, queries, placeholder, METRICS, progress=False, scorer=best_passage)
    return score(run, "map", layout), run


def stored_vectors(es, index: str, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every vector the index holds, with the position (in `ids`) of its document."""
    position = {d: i for i, d in enumerate(ids)}
    vectors, owner = [], []
    body = {"query": {"match_all": {}}, "size": 1000, "_source": {"exclude_vectors": False}}
    resp = es.search(index=index, body=body, scroll="2m")
    while resp["hits"]["hits"]:
        for hit in resp["hits"]["hits"]:
            src = hit["_source"]
            for vector in [p["embedding"] for p in src.get("passages", [])] or [
                src.get("embedding")
            ]:
                vectors.append(vector)
                owner.append(position[src["id"]])
        resp = es.scroll(scroll_id=resp["_scroll_id"], scroll="2m")
    return np.asarray(vectors, dtype=np.float32), np.asarray(owner)


def engine_agreement(es, index, layout, queries, run, sample: int = 40) -> float:
    """Share of the exact multilingual top 10 the engine also returns, for `sample` queries
    per language."""
    from xlir_plugin.search import search_vectors

    shares = []
    for x in layout.query_side:
        setting = run.settings[(x, MULTI)]
        rows, tops = setting.rows[:sample], setting.top[:sample]
        hits = search_vectors(es, index, queries[rows], k=10, source=["id"])
        for want, got in zip(tops, hits, strict=True):
            exact = {layout.cand_ids[i] for i in want[:10]}
            shares.append(len(exact & {h.id for h in got}) / len(exact))
    return float(np.mean(shares))


# -- the runs ---------------------------------------------------------------------------------


def index_row(es, encoder, docs, chunking, name: str) -> dict:
    from xlir_plugin.index import delete_index
    from xlir_plugin.ingest import ingest

    delete_index(es, name)
    started = time.perf_counter()
    report = ingest(es, name, encoder, docs, progress=False, chunking=chunking)
    seconds = time.perf_counter() - started
    es.indices.forcemerge(index=name, max_num_segments=1, wait_for_completion=True)
    es.indices.refresh(index=name)
    size = es.indices.stats(index=name, metric="store")["indices"][name]["total"]["store"]
    return {
        "seconds": seconds,
        "encode_seconds": report.encode_seconds,
        "bytes": size["size_in_bytes"],
        "passages": report.passages or report.indexed,
        "truncated": report.truncated,
        "failed": report.failed,
    }


def choose_n(encoder) -> tuple[int, dict]:
    """The passage length with the best mean of Mono/Cross/Multi mAP on squad-dev-parallel."""
    data, docs = squad_documents()
    layout = Layout.build(data)
    ids = [d["id"] for d in docs]
    queries = encoder.encode_queries([q.text for q in data.questions])
    found = {}
    for n in CANDIDATE_N:
        chunker = Chunker.for_encoder(encoder, ChunkSettings(n))
        texts, owner = [], []
        for i, doc in enumerate(docs):
            for a, b in chunker.spans(doc["text"]):
                texts.append(doc["text"][a:b])
                owner.append(i)
        result, _ = evaluate(layout, queries, encoder.encode_passages(texts), np.asarray(owner))
        found[n] = {k: result.mean[k] for k in ("mono", "cross", "multi", "rank_distance")}
    best = max(
        CANDIDATE_N, key=lambda n: np.mean([found[n][k] for k in ("mono", "cross", "multi")])
    )
    info = {"docs": len(ids), "queries": len(data.questions), "by_n": found}
    return best, info


def splitter_row(encoder, docs, layout, queries, capacity: int) -> dict:
    """The same documents cut by `semantic-text-splitter` (not a dependency: installed for
    this comparison only) with the same tokenizer and capacity, ranked exactly."""
    import tokenizers
    from semantic_text_splitter import TextSplitter

    tokenizer = tokenizers.Tokenizer.from_file(str(Path(encoder.model_dir) / "tokenizer.json"))
    splitter = TextSplitter.from_huggingface_tokenizer(tokenizer, capacity)
    texts, owner = [], []
    for i, doc in enumerate(docs):
        for _, piece in splitter.chunk_indices(doc["text"]):
            texts.append(piece)
            owner.append(i)
    started = time.perf_counter()
    vectors = encoder.encode_passages(texts)
    seconds = time.perf_counter() - started
    result, _ = evaluate(layout, queries, vectors, np.asarray(owner))
    return {
        "label": f"semantic-text-splitter, capacity {capacity} (exact ranking only)",
        "passages": len(texts),
        "encode_seconds": seconds,
        "mean": result.mean,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/long-documents.md"))
    parser.add_argument("--json", type=Path, default=Path("results/long-documents.json"))
    parser.add_argument("--skip-choice", action="store_true", help="do not run the N choice")
    parser.add_argument("--langs", default=",".join(XQUAD_LANGS), help="XQuAD-R languages")
    parser.add_argument(
        "--splitter-only",
        type=int,
        metavar="CAPACITY",
        help="add the semantic-text-splitter row to an existing --json, then rewrite --out",
    )
    args = parser.parse_args()

    from xlir_plugin.connection import EsSettings, connect
    from xlir_plugin.encoder import OnnxEncoder
    from xlir_plugin.index import delete_index
    from xlir_plugin.models import resolve_served_model

    encoder = OnnxEncoder(resolve_served_model("default"))
    if args.splitter_only:
        info = json.loads(args.json.read_text())
        data, docs = xquad_documents(args.langs.split(","))
        queries = encoder.encode_queries([q.text for q in data.questions])
        row = splitter_row(encoder, docs, Layout.build(data), queries, args.splitter_only)
        info["splitter"] = row | {"load": _uptime()}
        print(row, flush=True)
        _write(args, info)
        return
    es = connect(EsSettings.from_env())
    load = {"before": _uptime()}
    started = time.perf_counter()
    choice = None if args.skip_choice else choose_n(encoder)
    data, docs = xquad_documents(args.langs.split(","))
    layout = Layout.build(data)
    ids = [d["id"] for d in docs]
    t0 = time.perf_counter()
    queries = encoder.encode_queries([q.text for q in data.questions])
    query_seconds = time.perf_counter() - t0
    rows = []
    for label, chunking in ROWS:
        name = f"xlir-long-{uuid.uuid4().hex[:8]}"
        try:
            cost = index_row(es, encoder, docs, chunking, name)
            passages, owner = stored_vectors(es, name, ids)
            result, run = evaluate(layout, queries, passages, owner)
            agree = engine_agreement(es, name, layout, queries, run)
        finally:
            delete_index(es, name)
        rows.append({"label": label, "chunking": chunking.stamp() if chunking else None,
                     "mean": result.mean, "cost": cost, "engine_top10": agree,
                     "per_lang": result.per_lang})  # fmt: skip
        print(label, {k: round(v, 4) for k, v in result.mean.items()}, cost, agree, flush=True)
    load["after"] = _uptime()
    info = {
        "docs": len(docs),
        "queries": len(data.questions),
        "query_seconds": query_seconds,
        "seconds": time.perf_counter() - started,
        "load": load,
        "cores": os.cpu_count(),
        "choice": choice,
        "rows": rows,
    }
    _write(args, info)


def _write(args: argparse.Namespace, info: dict) -> None:
    from benchmarks.long_documents_report import markdown

    args.json.write_text(json.dumps(info, indent=1, default=float) + "\n")
    args.out.write_text(markdown(info))
    print(f"wrote {args.out} and {args.json}")


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    main()
