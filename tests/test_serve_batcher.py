"""The dynamic batcher on its own (the default model, no HTTP): batch bounds, no wait for a
lone request, a full queue, and a drain on close."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.models import resolve_served_model
from xlir_plugin.serve.batcher import Batcher, Closed, QueueFull
from xlir_plugin.serve.limits import Limits
from xlir_plugin.serve.metrics import Metrics

TEXTS = [f"sentence number {i} about the Normans" for i in range(40)]


@pytest.fixture(scope="module")
def encoder() -> OnnxEncoder:
    return OnnxEncoder(resolve_served_model("default"))


class Recording(OnnxEncoder):
    """The encoder's own work, with the size of every call recorded."""

    def __init__(self, inner: OnnxEncoder) -> None:
        self.__dict__.update(inner.__dict__)
        self.calls: list[int] = []

    def embed_tokenized(self, encodings: list) -> np.ndarray:
        self.calls.append(len(encodings))
        time.sleep(0.02)  # long enough for the next requests to queue behind this batch
        return super().embed_tokenized(encodings)


def run(coro):
    return asyncio.run(coro)


def test_batches_keep_their_bounds_and_each_request_gets_its_vectors(encoder):
    recording = Recording(encoder)
    limits = Limits(max_batch_texts=8, max_wait_ms=50)
    requests = [TEXTS[i : i + 3] for i in range(0, 30, 3)]  # 10 requests of 3 texts

    async def main():
        batcher = Batcher(recording, limits, Metrics())
        await batcher.start()
        results = await asyncio.gather(
            *(batcher.submit(recording.tokenize(texts)) for texts in requests)
        )
        await batcher.close()
        return results

    results = run(main())
    assert max(recording.calls) <= 8 and sum(recording.calls) == 30
    assert len(recording.calls) < len(requests)  # requests shared batches
    for texts, vectors in zip(requests, results, strict=True):
        assert np.abs(vectors - encoder.encode(texts)).max() < 1e-6


def test_a_lone_request_does_not_wait(encoder):
    limits = Limits(max_wait_ms=2_000)  # a wait would show

    async def main():
        batcher = Batcher(encoder, limits, Metrics())
        await batcher.start()
        begin = time.monotonic()
        await batcher.submit(encoder.tokenize(["one query"], "query"))
        spent = time.monotonic() - begin
        await batcher.close()
        return spent

    assert run(main()) < 1.0


def test_a_full_queue_refuses_and_close_drains(encoder):
    recording = Recording(encoder)
    limits = Limits(max_queue_texts=6, max_request_texts=6)

    async def main():
        batcher = Batcher(recording, limits, Metrics())
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit(recording.tokenize(TEXTS[:6])))
        while not recording.calls:  # the worker took it (and works 20 ms): the queue is empty
            await asyncio.sleep(0.001)
        queued = asyncio.ensure_future(batcher.submit(recording.tokenize(TEXTS[6:12])))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as refused:
            await batcher.submit(recording.tokenize(TEXTS[12:14]))
        await batcher.close()  # drains: both queued requests are answered
        with pytest.raises(Closed):
            await batcher.submit(recording.tokenize(TEXTS[:1]))
        return refused.value.retry_after, await first, await queued

    retry_after, first, queued = run(main())
    assert retry_after >= 1 and first.shape == queued.shape == (6, encoder.dim)
