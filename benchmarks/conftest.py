"""Benchmark fixtures: the default model in its four forms, real XQuAD-R text, a real node.

Run for timings: `pytest benchmarks/ --benchmark-only --benchmark-json=.benchmarks/latest.json`
then `python benchmarks/report.py .benchmarks/latest.json > benchmarks/REPORT.md`.
Under `--benchmark-disable` (CI) every body runs once on smaller inputs: same code, no timing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import es, es_settings, index_name, xquad_dir  # noqa: F401  (shared fixtures)
from xlir_plugin.evaluation.data import load_lareqa
from xlir_plugin.paths import cache_dir


def pytest_addoption(parser):
    parser.addoption("--xlir-model", default=None, help="another exported model dir to benchmark")


@pytest.fixture(scope="session")
def quick(request) -> bool:
    """True under --benchmark-disable: bodies run once, so inputs shrink."""
    return bool(request.config.getoption("benchmark_disable"))


@pytest.fixture(scope="session")
def xquad(xquad_dir):  # noqa: F811
    return load_lareqa(xquad_dir)


@pytest.fixture(scope="session")
def passages(xquad, quick) -> list[str]:
    """512 real sentences mixed across the 11 languages (deterministic)."""
    rng = np.random.default_rng(0)
    picked = rng.choice(len(xquad.candidates), size=64 if quick else 512, replace=False)
    return [xquad.candidates[i].text for i in picked]


@pytest.fixture(scope="session")
def questions(xquad) -> list[str]:
    rng = np.random.default_rng(1)
    return [
        xquad.questions[i].text for i in rng.choice(len(xquad.questions), size=200, replace=False)
    ]


@pytest.fixture(scope="session")
def model_dirs() -> dict[str, Path]:
    from xlir_plugin.default_model import materialize_default
    from xlir_plugin.models import resolve_served_model

    return {
        "int8": resolve_served_model("default", "int8"),
        "fp32": resolve_served_model("default", "none"),
        "hf": materialize_default(),
    }


@pytest.fixture(scope="session")
def pool_vectors(xquad, model_dirs, quick) -> tuple[list, np.ndarray]:
    """The XQuAD-R pool encoded once with the int8 model, cached on disk by model sha256."""
    from xlir_plugin.encoder import OnnxEncoder

    encoder = OnnxEncoder(model_dirs["int8"])
    candidates = xquad.candidates[:: 10 if quick else 1]
    key = hashlib.sha1(f"{encoder.manifest.sha256}:{len(candidates)}".encode()).hexdigest()[:16]
    path = cache_dir() / "bench" / f"pool-{key}.npy"
    if path.is_file():
        return candidates, np.load(path)
    vectors = encoder.encode_passages([c.text for c in candidates])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return candidates, vectors
