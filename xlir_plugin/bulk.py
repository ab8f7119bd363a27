"""Bulk requests with retries: what `ingest` sends, and how a full write queue is waited out.

The engine answers 429 when its write queue is full, and 502/503/504 while a shard moves or
a node leaves, for a whole request or for single items. Those documents are sent again after
an exponential backoff (`Backoff`), up to `max_retries` times, and every retry is counted;
other item errors are final. A lost connection (after the client has tried every node it
knows) raises `engines.EngineUnreachable`.

A float32 vector (what the encoder makes) is written with 9 significant digits, which read
back as float32 are the same numbers: json's 17 digits of the float64 took 3x the time and
half as many bytes again. While a load runs, periodic refreshes are paused (`pause_refresh`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from elasticsearch.serializer import JsonSerializer

from .engines import Client, EngineApiError, engine_of
from .schema import VECTOR_FIELD

log = logging.getLogger(__name__)

RETRY_ON_STATUS = (429, 502, 503, 504)
_CLIENT_JSON = JsonSerializer()  # what the client does with values json cannot write
#: `_meta` key of an index whose refreshes an ingest paused: the interval to put back
PAUSED_REFRESH_KEY = "xlir_paused_refresh_interval"


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


def _operations(actions: list[dict[str, Any]]) -> list[dict[str, Any] | str]:
    ops: list[dict[str, Any] | str] = []
    for action in actions:
        ops.append({"index": {"_index": action["_index"], "_id": action["_id"]}})
        ops.append(source_json(action["_source"]))
    return ops


def source_json(source: dict[str, Any]) -> str:
    """`source` as the client would write it, but a float32 numpy vector with `%.9g`: nine
    significant digits always read back as the same float32 (and there is no other rounding
    on the way, so the indexed vector is the same)."""
    vector = source.get(VECTOR_FIELD)
    if not isinstance(vector, np.ndarray) or vector.dtype != np.float32:
        return _dumps(source)
    rest = _dumps({k: v for k, v in source.items() if k != VECTOR_FIELD})
    numbers = ",".join(["%.9g"] * len(vector)) % tuple(vector.tolist())
    return f'{rest[:-1]}{"," if len(rest) > 2 else ""}"{VECTOR_FIELD}":[{numbers}]}}'


def _api_error(exc: EngineApiError) -> dict[str, Any] | str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return body["error"]
    return str(exc.message)


def send(
    es: Client,
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
    engine = engine_of(es)  # its bulk leaves 429/5xx to us, to be counted
    pending = actions
    for attempt in range(backoff.max_retries + 1):
        if attempt:
            delay = backoff.delay(attempt)
            on_retry(len(pending), delay)
            time.sleep(delay)
        last = attempt == backoff.max_retries
        try:
            response = engine.bulk(es, _operations(pending), pipeline)
        except EngineApiError as exc:
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


def _dumps(data: Any) -> str:
    return json.dumps(data, default=_CLIENT_JSON.default, ensure_ascii=False, separators=(",", ":"))


def pause_refresh(es: Client, index: str) -> Callable[[], None]:
    """Turn off `index`'s periodic refresh for a load; return what turns it back on.

    One refresh at the end instead of one a second: fewer, larger segments and no merging of
    small vector graphs. The interval to restore is kept in the index's `_meta` until then,
    so a run cut short is put right by the next one. Best effort: a client that may not
    change settings loads with refreshes on.
    """
    engine = engine_of(es)
    try:
        name, found = next(iter(engine.get_settings(es, index).items()))
        current = found["settings"].get("index", {}).get("refresh_interval")
        meta = _meta(es, name)
        if PAUSED_REFRESH_KEY not in meta:
            if current == "-1":  # off by someone's choice: leave it alone
                return lambda: None
            _put_meta(es, name, meta | {PAUSED_REFRESH_KEY: current})
            engine.put_settings(es, name, {"index.refresh_interval": "-1"})
    except EngineApiError as exc:
        log.debug("cannot pause refreshes of %s (%s): loading with them on", index, exc)
        return lambda: None
    return lambda: _resume_refresh(es, name)


def refresh_paused(es: Client, index: str) -> bool:
    """Whether a load into `index` paused its refreshes and was cut short (killed) before
    turning them back on: what it indexed is not counted by `count` until a refresh."""
    mappings = engine_of(es).get_mapping(es, index)
    return any(PAUSED_REFRESH_KEY in (m["mappings"].get("_meta") or {}) for m in mappings.values())


def _resume_refresh(es: Client, name: str) -> None:
    meta = _meta(es, name)
    if PAUSED_REFRESH_KEY in meta:  # None puts the server's default back
        interval = meta.pop(PAUSED_REFRESH_KEY)
        engine_of(es).put_settings(es, name, {"index.refresh_interval": interval})
        _put_meta(es, name, meta)


def _meta(es: Client, name: str) -> dict[str, Any]:
    mappings = engine_of(es).get_mapping(es, name)[name]["mappings"]
    return dict(mappings.get("_meta") or {})


def _put_meta(es: Client, name: str, meta: dict[str, Any]) -> None:
    engine_of(es).put_meta(es, name, meta)
