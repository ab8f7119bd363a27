"""Embed documents in batches and bulk-index them into a model-stamped index.

`ingest(es, index, encoder, source)` reads documents (`documents.py`), embeds those without
an `embedding` in a background thread while bulk requests are in flight, retries bulk items
rejected with 429/5xx with backoff, and accounts for every document in an `IngestReport`
(`ingest_report.py`): a document Elasticsearch finally rejected is a `Failure` with its line
number and reason, counted and written to the failures file when one is given.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elasticsearch import Elasticsearch, helpers
from elasticsearch import TransportError as EsTransportError

from .documents import Doc, Failure, InvalidDocument, count_documents, iter_documents, prepare
from .index import check_index, ensure_index, index_meta
from .ingest_report import IngestAborted, IngestReport, Ledger
from .schema import VECTOR_FIELD, check_dims

if TYPE_CHECKING:
    from .encoder import OnnxEncoder

log = logging.getLogger(__name__)

RETRY_ON_STATUS = (429, 502, 503, 504)


def _actions(
    records: Iterable[Doc | Failure],
    index: str,
    encoder: OnnxEncoder | None,
    dims: int,
    batch_size: int,
    ledger: Ledger,
) -> Iterator[dict[str, Any]]:
    """Validate, embed in batches of `batch_size`, and yield bulk actions."""
    batch: list[tuple[int | None, str, dict[str, Any], list[float] | None]] = []

    def flush() -> Iterator[dict[str, Any]]:
        texts = [body["text"] for _, _, body, vector in batch if vector is None]
        if texts:
            vectors = iter(encoder.encode_passages(texts, warn=False).tolist())
            with ledger.lock:
                ledger.report.truncated += encoder.last_truncated
        for line, _id, body, vector in batch:
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
        except InvalidDocument as exc:
            given = record.source.get("id") if isinstance(record.source, dict) else None
            ledger.fail(Failure(record.line, None if given is None else str(given), str(exc)))
            continue
        if vector is None and encoder is None:
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
    es: Elasticsearch,
    index: str,
    encoder: OnnxEncoder | None,
    source: Any,
    *,
    batch_size: int = 256,
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
) -> IngestReport:
    """Embed and index `source` into `index`; return counts, failures and throughput.

    source: JSONL path, `datasets.Dataset`, or iterable of dicts (or of `Doc`/`Failure`).
    encoder: embeds documents lacking an `embedding`; None when every document carries one.
    create: create the index for `encoder`'s model when missing (with `index_options`).
    The index's model stamp is checked before any document is sent (ModelMismatch).
    pipeline: Elasticsearch ingest pipeline applied by bulk (`pipeline=`).
    failures_path: JSONL file receiving every failure (line, id, reason, stage, status).
    Retries: bulk items rejected with 429/502/503/504 are retried up to `max_retries` times
    with exponential backoff from `initial_backoff` seconds.
    """
    started = time.perf_counter()
    if encoder is not None:
        if create:
            meta = ensure_index(es, index, encoder.manifest, index_options)
        else:
            meta = check_index(es, index, encoder.manifest)
    else:
        meta = index_meta(es, index)
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
    extra = {"pipeline": pipeline} if pipeline else {}
    actions = _in_background(
        _actions(iter_documents(source), index, encoder, dims, batch_size, ledger),
        depth=max(chunk_size, batch_size) * 2,
    )
    try:
        for ok, item in helpers.streaming_bulk(
            es,
            actions,
            chunk_size=chunk_size,
            raise_on_error=False,
            raise_on_exception=False,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            retry_on_status=RETRY_ON_STATUS,
            **extra,
        ):
            ledger.answered(ok, item)
        if ledger.pending:  # every sent document must have an answer
            ledger.abandon("no answer from bulk")
        if refresh:
            es.indices.refresh(index=index)
    except EsTransportError as exc:
        ledger.abandon(f"not confirmed: {exc}")
        report.seconds = time.perf_counter() - started
        ledger.close()
        bar.close()
        raise IngestAborted(
            f"lost Elasticsearch while indexing into {index!r} ({exc}); "
            f"{report.indexed} indexed, {report.failed} failed before stopping"
            + (f" (see {report.failures_path})" if report.failures_path else ""),
            report,
        ) from exc
    finally:
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


__all__ = ["IngestAborted", "IngestReport", "ingest"]
