"""Embed documents in batches and bulk-index them into a model-stamped index.

`ingest(es, index, encoder, source)` reads documents (`documents.py`), embeds those without
an `embedding` in a background thread while bulk requests are in flight, retries bulk items
rejected with 429/5xx with backoff (`bulk.py`, retries counted), and accounts for every
document in an `IngestReport` (`ingest_report.py`): a document Elasticsearch finally rejected
is a `Failure` with its line number and reason, counted and written to the failures file.
A re-run (e.g. after the cluster went away) skips documents already indexed with the same
source: one `mget` of ids per batch, before encoding, when the index held documents.

Throughput: the encoder sorts each batch by length (1024 documents: 3% padding, against 9%
for 256), documents keep their input order in the bulk requests and the report, and the
index's periodic refresh is paused for the load (one refresh at the end).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bulk import RETRY_ON_STATUS, Backoff, chunks, pause_refresh, refresh_paused, send
from .chunking import Chunker, ChunkSettings, check_chunking
from .documents import Doc, Failure, InvalidDocument, count_documents, iter_documents, prepare
from .engines import Client, EngineApiError, EngineUnreachable, engine_of
from .errors import InputError
from .index import check_index, ensure_index, index_meta
from .ingest_report import IngestAborted, IngestReport, Ledger
from .schema import PASSAGES_FIELD, VECTOR_FIELD, check_dims

if TYPE_CHECKING:
    from .encoder import OnnxEncoder

log = logging.getLogger(__name__)

Entry = tuple[int | None, str, dict[str, Any], "list[float] | None"]
#: documents per encoder call: the window the encoder sorts by length
BATCH_SIZE = 1024
#: what a stored document has beyond its input: left out when comparing the two
UNSTORED = [VECTOR_FIELD, f"{PASSAGES_FIELD}.{VECTOR_FIELD}"]


def _texts(body: dict[str, Any]) -> list[str]:
    """What the encoder embeds for a document: its passages when chunked, else its text."""
    if PASSAGES_FIELD not in body:
        return [body["text"]]
    return [body["text"][p["start"] : p["end"]] for p in body[PASSAGES_FIELD]]


def _chunk(body: dict[str, Any], vector: Any, chunker: Chunker) -> None:
    """Give `body` its passages' offsets (their vectors come with the batch's encoding)."""
    if vector is not None:
        raise InvalidDocument(
            f"a chunked index takes no precomputed `{VECTOR_FIELD}`: its passages are "
            "embedded from `text`"
        )
    if PASSAGES_FIELD in body:
        raise InvalidDocument(f"field `{PASSAGES_FIELD}` is reserved in a chunked index")
    spans = chunker.spans(body["text"])
    if not spans:
        raise InvalidDocument("`text` has no tokens to embed")
    body[PASSAGES_FIELD] = [{"start": a, "end": b} for a, b in spans]


def _unchanged(es: Client, index: str, entries: list[Entry]) -> set[str]:
    """Ids among `entries` already indexed with the same source: nothing to encode or send.
    When the lookup is refused (e.g. shards still recovering) nothing is skipped."""
    ids = [e[1] for e in entries]
    try:
        response = engine_of(es).mget(es, index, ids, source_excludes=UNSTORED)
    except EngineApiError as exc:
        log.debug("cannot look up ids in %s (%s): encoding them all", index, exc)
        return set()
    stored = {d["_id"]: d.get("_source") for d in response["docs"] if d.get("found")}
    return {_id for _, _id, body, _ in entries if _id in stored and stored[_id] == body}


def _actions(
    records: Iterable[Doc | Failure],
    index: str,
    encoder: OnnxEncoder | None,
    dims: int,
    batch_size: int,
    ledger: Ledger,
    skip: Callable[[list[Entry]], set[str]] | None = None,
    in_engine: bool = False,
    chunker: Chunker | None = None,
) -> Iterator[dict[str, Any]]:
    """Validate, embed in batches of `batch_size`, and yield bulk actions; `skip` names the
    documents (of those to be encoded) that are already indexed unchanged; `in_engine`: send
    documents without a vector as they are (the index's pipeline embeds them); `chunker`:
    cut each text into passages, one vector each (a chunked index)."""
    batch: list[Entry] = []

    def flush() -> Iterator[dict[str, Any]]:
        if skip is not None:
            done = skip([e for e in batch if e[3] is None])
            if done:
                batch[:] = [e for e in batch if e[3] is not None or e[1] not in done]
                ledger.skipped(len(done))
        texts = [t for _, _, body, vector in batch if vector is None for t in _texts(body)]
        if texts and not in_engine:
            started = time.perf_counter()
            vectors = iter(encoder.encode_passages(texts, warn=False))  # float32 rows
            with ledger.lock:
                ledger.report.truncated += encoder.last_truncated
                ledger.report.encode_seconds += time.perf_counter() - started
                ledger.report.passages += len(texts) if chunker else 0
        for line, _id, body, vector in batch:
            if chunker is not None:
                for passage in body[PASSAGES_FIELD]:
                    passage[VECTOR_FIELD] = next(vectors)
            elif vector is not None or not in_engine:
                body[VECTOR_FIELD] = vector if vector is not None else next(vectors)
            ledger.sent(_id, line)
            yield {"_op_type": "index", "_index": index, "_id": _id, "_source": body}
        batch.clear()

    for record in records:
        ledger.read()
        if isinstance(record, Failure):
            ledger.fail(record)
            continue
        try:
            _id, body, vector = prepare(record.source, dims)
            if chunker is not None:
                _chunk(body, vector, chunker)
        except InvalidDocument as exc:
            given = record.source.get("id") if isinstance(record.source, dict) else None
            ledger.fail(Failure(record.line, None if given is None else str(given), str(exc)))
            continue
        if vector is None and encoder is None and not in_engine:
            ledger.fail(
                Failure(record.line, _id, f"no `{VECTOR_FIELD}` and no encoder to compute one")
            )
            continue
        batch.append((record.line, _id, body, vector))
        if len(batch) >= batch_size:
            yield from flush()
    if batch:
        yield from flush()


_DONE = object()


def _in_background(gen: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run `gen` in a thread, `depth` items ahead: embedding overlaps with bulk requests."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put((True, item), timeout=0.1)
                        break
                    except queue.Full:
                        pass
                if stop.is_set():
                    return
            q.put((True, _DONE))
        except BaseException as exc:  # handed to the consumer, raised there
            q.put((False, exc))

    thread = threading.Thread(target=produce, name="xlir-embed", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def ingest(
    es: Client,
    index: str,
    encoder: OnnxEncoder | None,
    source: Any,
    *,
    batch_size: int = BATCH_SIZE,
    chunk_size: int = 500,
    pipeline: str | None = None,
    failures_path: str | Path | None = None,
    refresh: bool = True,
    progress: bool = True,
    create: bool = True,
    index_options: dict[str, Any] | str | None = None,
    max_retries: int = 5,
    initial_backoff: float = 1.0,
    max_backoff: float = 30.0,
    skip_unchanged: bool = True,
    in_engine: bool = False,
    chunking: ChunkSettings | None = None,
) -> IngestReport:
    """Embed and index `source` into `index`; return counts, failures and throughput.

    source: JSONL path, `datasets.Dataset`, or iterable of dicts (or of `Doc`/`Failure`).
    encoder: embeds documents lacking an `embedding`; None when every document carries one.
    create: create the index for `encoder`'s model when missing (with `index_options`).
    The index's model stamp is checked before any document is sent (ModelMismatch).
    pipeline: Elasticsearch ingest pipeline applied by bulk (`pipeline=`).
    failures_path: JSONL file receiving every failure (line, id, reason, stage, status).
    Retries: bulk items rejected with 429/502/503/504 are retried up to `max_retries` times
    with exponential backoff from `initial_backoff` seconds (`report.retries` counts them).
    skip_unchanged: when the index already holds documents, those to be encoded are first
    looked up by id, and any stored with the same source is skipped (`report.skipped`):
    a re-run after a failure resumes without encoding again. False re-indexes everything;
    so does a `pipeline` (what it stores is its own output, and it runs again on every write).
    in_engine: documents without an `embedding` are sent as they are, for the index's
    `xlir_embed` pipeline to embed inside Elasticsearch (`engine.engine_ingest`).
    chunking: cut each `text` into passages (`chunking.py`), one vector each, in the nested
    field `passages`; the index must have been made with the same settings (or is made so).
    """
    started = time.perf_counter()
    if chunking is not None and (encoder is None or in_engine or pipeline):
        raise InputError("chunking in the client needs the encoder (not a pipeline)")
    if encoder is not None:
        if create:
            meta = ensure_index(es, index, encoder.manifest, index_options, chunking)
        else:
            meta = check_index(es, index, encoder.manifest, chunking)
    else:
        meta = index_meta(es, index)
        if not in_engine:  # in the engine, the pipeline's processor checks its own chunking
            check_chunking(index, meta.get("chunking"), None)
    chunker = Chunker.for_encoder(encoder, chunking) if chunking else None
    dims = int(meta.get("mapping_dims") or meta["dims"])
    if encoder is not None:
        check_dims(index, meta, encoder.dim)

    from tqdm.auto import tqdm

    report = IngestReport(index=index)
    bar = tqdm(
        total=count_documents(source) if progress else None,
        unit="doc",
        desc=f"indexing {index}",
        disable=not progress,
        smoothing=0.1,
    )
    ledger = Ledger(report, failures_path, bar)
    skip = None
    engine = engine_of(es)
    if refresh_paused(es, index):  # a load cut short: its documents are not searchable yet
        engine.refresh(es, index)
    if skip_unchanged and encoder is not None and not pipeline and engine.count(es, index):

        def skip(entries: list[Entry]) -> set[str]:
            return _unchanged(es, index, entries) if entries else set()

    actions = _in_background(
        _actions(
            iter_documents(source),
            index,
            encoder,
            dims,
            batch_size,
            ledger,
            skip,
            in_engine,
            chunker,
        ),
        depth=max(chunk_size, batch_size) * 2,
    )
    backoff = Backoff(max_retries, initial_backoff, max_backoff)
    paused = None
    try:
        paused = pause_refresh(es, index)
        for chunk in chunks(actions, chunk_size):
            for ok, item in send(es, chunk, backoff, pipeline=pipeline, on_retry=ledger.retried):
                ledger.answered(ok, item)
        if ledger.pending:  # every sent document must have an answer
            ledger.abandon("no answer from bulk")
        resume, paused = paused, None
        resume()
        if refresh:
            engine.refresh(es, index)
    except EngineUnreachable as exc:
        ledger.abandon(f"not confirmed: {exc}")
        report.seconds = time.perf_counter() - started
        ledger.close()
        bar.close()
        raise IngestAborted(
            f"lost {engine.label} while indexing into {index!r} ({exc}); before stopping: "
            f"read {report.read}, indexed {report.indexed}, skipped {report.skipped}, "
            f"failed {report.failed}"
            + (f" (see {report.failures_path})" if report.failures_path else "")
            + ". Run the same command again once the cluster is back: documents already "
            "indexed are skipped and none is indexed twice",
            report,
        ) from exc
    finally:
        if paused is not None:
            _resume_refresh_quietly(paused, index)
        ledger.close()
        bar.close()
    report.seconds = time.perf_counter() - started
    if report.truncated:
        log.warning(
            "%d of %d document(s) were longer than %d tokens and were truncated",
            report.truncated,
            report.read,
            encoder.max_length,
        )
    return report


def _resume_refresh_quietly(resume: Callable[[], None], index: str) -> None:
    """Turn refreshes back on after a failed load, without hiding why it failed."""
    try:
        resume()
    except (EngineApiError, EngineUnreachable) as exc:
        log.warning(
            "refreshes of %s are still paused (%s): the next ingest into it turns them back on",
            index,
            exc,
        )


__all__ = ["RETRY_ON_STATUS", "IngestAborted", "IngestReport", "ingest"]
