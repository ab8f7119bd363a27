"""Read documents, embed them in batches, bulk-index them, and account for every one.

`ingest(es, index, encoder, source)` takes a JSONL path, a Hugging Face `datasets.Dataset`
or any iterable of dicts. Each document needs `text` and `lang`; `id`, `title`, `embedding`
(a precomputed vector) and any other fields are optional. The Elasticsearch `_id` is the
given `id`, else a hash of lang + text, so a re-run overwrites instead of duplicating.

Nothing is dropped silently: a bad JSON line, a missing field, a vector with the wrong
length, or a document Elasticsearch finally rejected (after retries with backoff on 429 and
5xx) becomes a `Failure` with its line number and reason, counted in the report and written
to the failures file when one is given.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elasticsearch import Elasticsearch, helpers
from elasticsearch import TransportError as EsTransportError

from .errors import InputError, XlirError
from .index import VECTOR_FIELD, check_dims, check_index, ensure_index, index_meta

if TYPE_CHECKING:
    from .encoder import OnnxEncoder

log = logging.getLogger(__name__)

RETRY_ON_STATUS = (429, 502, 503, 504)
MAX_ID_BYTES = 512
#: failures kept in memory on the report (all of them go to the failures file)
MAX_FAILURES_IN_MEMORY = 10_000


@dataclass
class Doc:
    """One input document and where it came from (1-based line or row number)."""

    line: int | None
    source: Any


@dataclass
class Failure:
    """A document that was not indexed, and why."""

    line: int | None
    id: str | None
    reason: str
    stage: str = "validate"  # read | validate | index
    status: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass
class IngestReport:
    index: str
    read: int = 0
    indexed: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    truncated: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    failures_path: str | None = None

    @property
    def docs_per_s(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "failures"}
        data["docs_per_s"] = round(self.docs_per_s, 1)
        data["seconds"] = round(self.seconds, 3)
        return data

    def summary(self) -> str:
        text = (
            f"{self.index}: read {self.read}, indexed {self.indexed} "
            f"({self.created} new, {self.updated} updated), failed {self.failed}, "
            f"{self.seconds:.1f}s, {self.docs_per_s:.0f} docs/s"
        )
        if self.truncated:
            text += f", {self.truncated} truncated to the model's max length"
        if self.failed and self.failures_path:
            text += f"; failures in {self.failures_path}"
        return text


class IngestAborted(XlirError):
    """The cluster went away mid-ingest; `.report` accounts for what was done."""

    def __init__(self, message: str, report: IngestReport) -> None:
        super().__init__(message)
        self.report = report


# -- reading ----------------------------------------------------------------------------------


def read_jsonl(path: str | Path) -> Iterator[Doc | Failure]:
    """One `Doc` per non-blank line (`.gz` read transparently); bad lines become `Failure`s."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input file {path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                data = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                yield Failure(number, None, f"line is not UTF-8: {exc}", "read")
                continue
            except json.JSONDecodeError as exc:
                yield Failure(number, None, f"bad JSON: {exc.msg} at column {exc.colno}", "read")
                continue
            yield Doc(number, data)


def iter_documents(source: Any) -> Iterator[Doc | Failure]:
    """Documents from a JSONL path, a `datasets.Dataset`, or an iterable of dicts/Docs."""
    if isinstance(source, (str, Path)):
        yield from read_jsonl(source)
        return
    if isinstance(source, dict):
        raise InputError("expected documents, got a single dict (wrap it in a list)")
    for number, item in enumerate(source, start=1):  # Dataset rows iterate as dicts
        yield item if isinstance(item, (Doc, Failure)) else Doc(number, item)


def count_documents(source: Any) -> int | None:
    """How many records `source` holds when that is cheap to know (for the progress bar)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file() or path.suffix == ".gz":
            return None
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    try:
        return len(source)
    except TypeError:
        return None


def doc_id(doc: dict[str, Any]) -> str:
    """The Elasticsearch `_id`: the document's own `id`, else sha1 of lang + "\\n" + text."""
    given = doc.get("id")
    if given is not None and given != "":
        return str(given)
    return hashlib.sha1(f"{doc['lang']}\n{doc['text']}".encode()).hexdigest()


class _Invalid(Exception):
    pass


def prepare(doc: Any, dims: int) -> tuple[str, dict[str, Any], list[float] | None]:
    """Validate one document: (`_id`, source without the vector, vector or None).

    Raises `_Invalid` with a reason for anything Elasticsearch would reject or that
    would index garbage.
    """
    if not isinstance(doc, dict):
        raise _Invalid(f"document is {type(doc).__name__}, not a JSON object")
    for key in ("text", "lang"):
        if key not in doc or doc[key] is None:
            raise _Invalid(f"missing `{key}`")
        if not isinstance(doc[key], str):
            raise _Invalid(f"`{key}` is {type(doc[key]).__name__}, not a string")
        if not doc[key].strip():
            raise _Invalid(f"`{key}` is empty")
    given = doc.get("id")
    if given is not None and (not isinstance(given, (str, int)) or isinstance(given, bool)):
        raise _Invalid(f"`id` is {type(given).__name__}, not a string or integer")
    for key in doc:
        if not isinstance(key, str) or key.startswith("_"):
            raise _Invalid(f"field {key!r} is reserved (names starting with '_' are metadata)")
    body = {k: v for k, v in doc.items() if k != VECTOR_FIELD}
    body["lang"] = doc["lang"].strip().lower()
    _id = doc_id(body)
    if len(_id.encode()) > MAX_ID_BYTES:
        raise _Invalid(f"`id` is longer than {MAX_ID_BYTES} bytes")
    body["id"] = _id
    vector = doc.get(VECTOR_FIELD)
    if vector is not None:
        vector = _check_vector(vector, dims)
    return _id, body, vector


def _check_vector(vector: Any, dims: int) -> list[float]:
    if hasattr(vector, "tolist"):  # numpy arrays
        vector = vector.tolist()
    if not isinstance(vector, (list, tuple)):
        raise _Invalid(f"`{VECTOR_FIELD}` is {type(vector).__name__}, not a list of numbers")
    if len(vector) != dims:
        raise _Invalid(f"`{VECTOR_FIELD}` has {len(vector)} dims, the index expects {dims}")
    out = []
    for x in vector:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            raise _Invalid(f"`{VECTOR_FIELD}` holds {x!r}, not a finite number")
        out.append(float(x))
    if not any(out):
        raise _Invalid(f"`{VECTOR_FIELD}` is all zeros (no direction to compare)")
    return out


# -- ingest -----------------------------------------------------------------------------------


class _Ledger:
    """Counts, failures file and progress bar; shared by the embedding thread and the sender."""

    def __init__(self, report: IngestReport, failures_path: str | Path | None, bar: Any):
        self.report = report
        self.bar = bar
        self.lock = threading.Lock()
        self.file = None
        if failures_path is not None:
            path = Path(failures_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
            report.failures_path = str(path)
        # _id -> (line, given id) of documents handed to bulk and not yet answered
        self.pending: dict[str, deque[tuple[int | None, str]]] = {}

    def read(self, n: int = 1) -> None:
        with self.lock:
            self.report.read += n

    def fail(self, failure: Failure) -> None:
        with self.lock:
            self.report.failed += 1
            if len(self.report.failures) < MAX_FAILURES_IN_MEMORY:
                self.report.failures.append(failure)
            if self.file:
                self.file.write(failure.to_json() + "\n")
                self.file.flush()
            self.bar.update(1)

    def sent(self, _id: str, line: int | None) -> None:
        with self.lock:
            self.pending.setdefault(_id, deque()).append((line, _id))

    def answered(self, ok: bool, item: dict[str, Any]) -> None:
        info = next(iter(item.values()))
        _id = str(info.get("_id"))
        with self.lock:
            waiting = self.pending.get(_id)
            line = None
            if waiting:
                line, _ = waiting.popleft()
                if not waiting:
                    del self.pending[_id]
        if ok:
            with self.lock:
                self.report.indexed += 1
                if info.get("result") == "created":
                    self.report.created += 1
                else:
                    self.report.updated += 1
                self.bar.update(1)
        else:
            self.fail(Failure(line, _id, _bulk_reason(info), "index", info.get("status")))

    def abandon(self, reason: str) -> None:
        """Everything sent but unanswered is a failure (the cluster went away)."""
        with self.lock:
            waiting = [(line, _id) for q in self.pending.values() for line, _id in q]
            self.pending.clear()
        for line, _id in waiting:
            self.fail(Failure(line, _id, reason, "index"))

    def close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None


def _bulk_reason(info: dict[str, Any]) -> str:
    error = info.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type')}: {error.get('reason')}"
        cause = error.get("caused_by") or {}
        if cause.get("reason") and cause.get("reason") != error.get("reason"):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
    else:
        reason = str(error)
    return f"HTTP {info.get('status')}: {reason}"


def _actions(
    records: Iterable[Doc | Failure],
    index: str,
    encoder: OnnxEncoder | None,
    dims: int,
    batch_size: int,
    ledger: _Ledger,
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
        except _Invalid as exc:
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
    ledger = _Ledger(report, failures_path, bar)
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


__all__ = [
    "Doc",
    "Failure",
    "IngestAborted",
    "IngestReport",
    "count_documents",
    "doc_id",
    "ingest",
    "iter_documents",
    "prepare",
    "read_jsonl",
]
