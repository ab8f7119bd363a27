"""Dynamic batching: requests that arrive together are encoded in one encoder call.

Requests are tokenized in their handlers (`OnnxEncoder.tokenize`), then queued. One worker
takes queued requests, oldest first, until a batch holds `max_batch_texts` texts or
`max_batch_tokens` tokens (a larger request goes alone), and runs `embed_tokenized` on
one thread: onnxruntime releases the GIL and uses the cores itself, while the event loop
keeps reading requests, which queue up for the next batch. So under load a batch is what
arrived during the previous one, and no fixed wait is needed for it.

The wait: a lone request is never held back (a query's latency is the point of serving
one). The worker waits, at most `max_wait_ms`, only while other requests are being read or
tokenized and will join within that time.

A text's vector does not depend on its batch-mates: the encoder pads each run to its own
longest text and the int8 model's activation scales were fixed at export (see
tests/test_batch_invariance.py); the last float bits may differ (|diff| ~1e-7).

Backpressure: at most `max_queue_texts` texts wait; past that `submit` raises `QueueFull`
(the server answers 429 with Retry-After). `close` refuses new work and drains the queue.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ..encoder import OnnxEncoder
from .limits import Limits
from .metrics import Metrics


class QueueFull(Exception):
    """Too many texts are waiting; `retry_after` is a guess of seconds until there is room."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the queue is full; retry after {retry_after} s")
        self.retry_after = retry_after


class Closed(Exception):
    """The server is shutting down and takes no new work."""


@dataclass
class _Job:
    encodings: list
    tokens: int
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Groups queued requests into encoder batches run on one worker thread."""

    def __init__(self, encoder: OnnxEncoder, limits: Limits, metrics: Metrics) -> None:
        self.encoder = encoder
        self.limits = limits
        self.metrics = metrics
        self._pending: deque[_Job] = deque()
        self._queued_texts = 0
        self._arriving = 0  # requests read or tokenizing: they will join soon
        self._closing = False
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xlir-encode")
        self._seconds_per_text = 0.01  # running estimate, for Retry-After

    async def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._worker = asyncio.create_task(self._run(), name="xlir-batcher")

    async def close(self) -> None:
        """Take no new requests; finish every queued one, then stop the worker."""
        self._closing = True
        if self._wakeup:
            self._wakeup.set()
        if self._worker:
            await self._worker
        self._executor.shutdown(wait=True)

    def arriving(self) -> _Arrival:
        """Context for a request being read and tokenized, so the worker may wait for it."""
        return _Arrival(self)

    async def submit(self, encodings: list) -> np.ndarray:
        """The vectors of `encodings` (from `encoder.tokenize`), in order."""
        if self._closing or self._wakeup is None:
            raise Closed()
        n = len(encodings)
        if self._pending and self._queued_texts + n > self.limits.max_queue_texts:
            self.metrics.rejected.inc()
            wait = (self._queued_texts + n) * self._seconds_per_text
            raise QueueFull(max(1, int(wait + 0.999)))
        job = _Job(encodings, sum(len(e.ids) for e in encodings), asyncio.Future())
        self._pending.append(job)
        self._queued_texts += n
        self._gauge()
        self._wakeup.set()
        return await job.future

    # -- the worker -------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._gather()
            batch = self._take()
            await self._encode(batch)

    async def _gather(self) -> None:
        """Wait (at most max_wait_ms) while requests still arriving could fill the batch."""
        deadline = time.monotonic() + self.limits.max_wait_ms / 1000
        while self._arriving and not self._closing and not self._full():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except TimeoutError:
                return

    def _full(self) -> bool:
        texts = tokens = 0
        for job in self._pending:
            texts += len(job.encodings)
            tokens += job.tokens
        return texts >= self.limits.max_batch_texts or tokens >= self.limits.max_batch_tokens

    def _take(self) -> list[_Job]:
        """The oldest jobs that fit the batch bounds (at least one)."""
        batch = [self._pending.popleft()]
        texts, tokens = len(batch[0].encodings), batch[0].tokens
        while self._pending:
            job = self._pending[0]
            if (
                texts + len(job.encodings) > self.limits.max_batch_texts
                or tokens + job.tokens > self.limits.max_batch_tokens
            ):
                break
            batch.append(self._pending.popleft())
            texts += len(job.encodings)
            tokens += job.tokens
        self._queued_texts -= texts
        self._gauge()
        return batch

    async def _encode(self, batch: list[_Job]) -> None:
        live = [job for job in batch if not job.future.done()]  # a client may have left
        encodings = [e for job in live for e in job.encodings]
        if not encodings:
            return
        m = self.metrics
        m.batch_requests.observe(len(live))
        m.batch_texts.observe(len(encodings))
        m.batch_tokens.observe(sum(job.tokens for job in live))
        start = time.monotonic()
        try:
            loop = asyncio.get_running_loop()
            vectors = await loop.run_in_executor(
                self._executor, self.encoder.embed_tokenized, encodings
            )
        except Exception as exc:  # every waiting request gets the error, the worker goes on
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        spent = (time.monotonic() - start) / len(encodings)
        self._seconds_per_text = 0.8 * self._seconds_per_text + 0.2 * spent
        offset = 0
        for job in live:
            n = len(job.encodings)
            if not job.future.done():
                job.future.set_result(vectors[offset : offset + n])
            offset += n

    def _gauge(self) -> None:
        self.metrics.queue_texts.set(self._queued_texts)
        self.metrics.queue_requests.set(len(self._pending))


class _Arrival:
    """Counts a request between its arrival and its `submit`."""

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher

    def __enter__(self) -> None:
        self.batcher._arriving += 1

    def __exit__(self, *exc: object) -> None:
        self.batcher._arriving -= 1
        if self.batcher._wakeup:
            self.batcher._wakeup.set()
