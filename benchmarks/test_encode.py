"""Groups 1-2: query encode latency (1 and 2 threads) and passage encode throughput."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.engines import ENGINES, load_engine


@pytest.fixture(scope="module")
def dirs(request, model_dirs):
    extra = request.config.getoption("--xlir-model")
    return {**model_dirs, "custom": extra} if extra else model_dirs


def engines(request) -> list[str]:
    return ENGINES + (["xlir-custom"] if request.config.getoption("--xlir-model") else [])


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("engine", ENGINES)
def test_query_latency(benchmark, dirs, questions, engine, threads):
    benchmark.group = f"1. query encode latency, {threads} thread{'s' if threads > 1 else ''}"
    encode = load_engine(engine, dirs, threads)
    query = [questions[0]]
    encode(query, True)  # warm-up
    vector = benchmark.pedantic(
        encode, args=(query, True), rounds=50, iterations=1, warmup_rounds=3
    )
    assert vector.shape == (1, 384) and np.isclose(np.linalg.norm(vector), 1, atol=1e-3)


@pytest.mark.parametrize("engine", ENGINES)
def test_passage_throughput(benchmark, dirs, passages, engine):
    benchmark.group = "2. passage encode throughput, 512 XQuAD-R sentences, 2 threads"
    encode = load_engine(engine, dirs, 2)
    vectors = benchmark.pedantic(encode, args=(passages, False), rounds=3, iterations=1)
    benchmark.extra_info["texts"] = len(passages)
    assert vectors.shape == (len(passages), 384)
    reference = load_engine("xlir-fp32", dirs, 2)(passages[:16], False)
    assert np.sum(vectors[:16] * reference, axis=1).min() > 0.97  # the same model in every engine
