"""The account of one ingest run: counts, failures (in memory and in the failures file).

`Ledger` is shared by the embedding thread and the bulk sender: it knows which documents are
in flight, so every document read ends up indexed or failed, even when the cluster goes away.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .documents import Failure
from .errors import XlirError

#: failures kept in memory on the report (all of them go to the failures file)
MAX_FAILURES_IN_MEMORY = 10_000


@dataclass
class IngestReport:
    index: str
    read: int = 0
    indexed: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    skipped: int = 0  # already indexed with the same source: not encoded, not sent
    retries: int = 0  # documents sent again after a 429/502/503/504
    retry_wait_seconds: float = 0.0  # time spent backing off before those retries
    truncated: int = 0
    passages: int = 0  # a chunked index: passages embedded (one vector each)
    encode_seconds: float = 0.0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    failures_path: str | None = None

    @property
    def docs_per_s(self) -> float:
        return self.indexed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "failures"}
        data["docs_per_s"] = round(self.docs_per_s, 1)
        for key in ("seconds", "encode_seconds", "retry_wait_seconds"):
            data[key] = round(data[key], 3)
        return data

    def summary(self) -> str:
        text = (
            f"{self.index}: read {self.read}, indexed {self.indexed} "
            f"({self.created} new, {self.updated} updated), failed {self.failed}, "
            f"{self.seconds:.1f}s, {self.docs_per_s:.0f} docs/s"
        )
        if self.skipped:
            text += f", {self.skipped} skipped (already indexed, unchanged)"
        if self.retries:
            text += (
                f", {self.retries} retried after the cluster pushed back "
                f"({self.retry_wait_seconds:.1f}s of backoff)"
            )
        if self.passages:
            text += f", {self.passages} passages embedded"
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


class Ledger:
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

    def skipped(self, n: int) -> None:
        with self.lock:
            self.report.skipped += n
            self.bar.update(n)

    def retried(self, documents: int, seconds: float) -> None:
        with self.lock:
            self.report.retries += documents
            self.report.retry_wait_seconds += seconds

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
