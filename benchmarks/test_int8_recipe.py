"""Group 12: the int8 recipe's activation scales, frozen at export (v3, the default) against
onnxruntime's dynamic per-batch scales (v2), the same model otherwise, in one run.

Frozen scales make a text's vector independent of its batch-mates; this group shows what they
cost in speed (one short query; passages per second) and records how far a vector moves
between alone and batched under each recipe.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

GROUP_QUERY = "12a. int8 recipe: one short query, 2 threads (frozen vs dynamic scales)"
GROUP_PASSAGES = "12b. int8 recipe: {n} XQuAD-R sentences in one call, 2 threads"
RECIPES = ("frozen", "dynamic")


@pytest.fixture(scope="module")
def recipe_encoders(model_dirs, tmp_path_factory):
    """The default int8 export (frozen scales) and the same export with dynamic scales."""
    from export.pipeline import export_model
    from export.quantize import Int8Settings
    from xlir_plugin.encoder import OnnxEncoder

    dynamic = Path(tmp_path_factory.mktemp("int8-dynamic")) / "model"
    export_model("default", dynamic, "int8", progress=False, int8=Int8Settings(frozen_scales=False))
    return {
        "frozen": OnnxEncoder(model_dirs["int8"], threads=2),
        "dynamic": OnnxEncoder(dynamic, threads=2),
    }


def _batch_drift(encoder, texts: list[str]) -> float:
    """The lowest cosine between a text encoded alone and in one batch with the others."""
    alone = np.stack([encoder.encode([t], warn=False)[0] for t in texts])
    return float((alone * encoder.encode(texts, warn=False)).sum(1).min())


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.benchmark(min_rounds=30, max_time=2.0)
def test_int8_recipe_query_latency(benchmark, recipe_encoders, questions, recipe):
    benchmark.group = GROUP_QUERY
    encoder = recipe_encoders[recipe]
    query = questions[:1]
    for _ in range(2):
        encoder.encode(query, "query")
    vector = benchmark(encoder.encode, query, "query")
    benchmark.extra_info.update({"engine": f"xlir-int8-{recipe}", "threads": 2})
    assert vector.shape == (1, encoder.dim)


@pytest.mark.parametrize("recipe", RECIPES)
def test_int8_recipe_passage_throughput(benchmark, recipe_encoders, passages, recipe):
    texts = passages[:256]
    benchmark.group = GROUP_PASSAGES.format(n=len(texts))
    encoder = recipe_encoders[recipe]
    encoder.encode(texts[:32])
    vectors = benchmark.pedantic(encoder.encode, args=(texts,), rounds=5, iterations=1)
    drift = _batch_drift(encoder, texts[:48])
    benchmark.extra_info.update(
        {"engine": f"xlir-int8-{recipe}", "threads": 2, "texts": len(texts)}
    )
    benchmark.extra_info["alone_vs_batched_min_cosine"] = round(drift, 7)
    if benchmark.stats:
        benchmark.extra_info["texts_per_s"] = round(len(texts) / benchmark.stats.stats.median, 1)
    assert vectors.shape == (len(texts), encoder.dim)
    if recipe == "frozen":
        assert drift >= 0.99999
    else:  # the reason for the frozen recipe: dynamic scales move vectors with the batch
        assert drift < 0.9999
