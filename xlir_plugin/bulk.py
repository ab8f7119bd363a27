"""Bulk requests with retries: what `ingest` sends, and how a full write queue is waited out.

Elasticsearch answers 429 when its write queue is full, and 502/503/504 while a shard moves or
a node leaves, for a whole request or for single items. Those documents are sent again after
an exponential backoff (`Backoff`), up to `max_retries` times, and every retry is counted;
other item errors are final. A lost connection (after the client has tried every node it
knows) raises the client's `TransportError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from elasticsearch import ApiError, Elasticsearch

RETRY_ON_STATUS = (429, 502, 503, 504)


@dataclass(frozen=True)
class Backoff:
    """Retry policy: `max_retries` re-sends, waiting `initial` s, doubling, at most `maximum` s."""

    max_retries: int = 5
    initial: float = 1.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * 2 ** (attempt - 1))


def chunks(actions: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """`actions` in lists of `size` (the last one shorter)."""
    chunk: list[dict[str, Any]] = []
    for action in actions:
        chunk.append(action)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _operations(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for action in actions:
        ops.append({"index": {"_index": action["_index"], "_id": action["_id"]}})
        ops.append(action["_source"])
    return ops


def _api_error(exc: ApiError) -> dict[str, Any] | str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return str(exc.message)


def send(
    es: Elasticsearch,
    actions: list[dict[str, Any]],
    backoff: Backoff,
    *,
    pipeline: str | None = None,
    on_retry: Callable[[int, float], None] = lambda documents, seconds: None,
) -> Iterator[tuple[bool, dict[str, Any]]]:
    """One bulk request for `actions`, re-sending what was refused for a retryable status.

    Yields (ok, {"index": item}) once per action, in the order answers become final;
    `on_retry(documents, seconds)` is told before each wait.
    """
    extra = {"pipeline": pipeline} if pipeline else {}
    client = es.options(retry_on_status=())  # 429/5xx come back here, to be counted
    pending = actions
    for attempt in range(backoff.max_retries + 1):
        if attempt:
            delay = backoff.delay(attempt)
            on_retry(len(pending), delay)
            time.sleep(delay)
        last = attempt == backoff.max_retries
        try:
            response = client.bulk(operations=_operations(pending), **extra)
        except ApiError as exc:
            if exc.status_code in RETRY_ON_STATUS and not last:
                continue
            error = _api_error(exc)
            for action in pending:
                yield (
                    False,
                    {"index": {"_id": action["_id"], "status": exc.status_code, "error": error}},
                )
            return
        retry = []
        for action, item in zip(pending, response["items"], strict=True):
            info = next(iter(item.values()))
            if "error" not in info:
                yield True, item
            elif info.get("status") in RETRY_ON_STATUS and not last:
                retry.append(action)
            else:
                yield False, item
        if not retry:
            return
        pending = retry
