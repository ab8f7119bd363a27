"""Group 16: the scale curve, 13k -> 100k -> 1M vectors, per engine and index option.

`benchmarks/scale.py` says how the larger pools are drawn from the real vectors and what is
measured. One command runs it and writes the rows for the report:

    XLIR_SCALE_JSON=results/scale.json .venv/bin/pytest benchmarks/test_scale.py --benchmark-only
    .venv/bin/python -m benchmarks.scale_report results/scale.json   # results/scale.md + .png

`XLIR_SCALE_SIZES=13014,100000` picks sizes (default 13k, 100k, 1M); under
`--benchmark-disable` (CI) one small pool of 2,000 (50 timed searches) keeps the code path
tested.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from benchmarks.quiet import load_avg
from benchmarks.scale import OPTIONS, exact_tenth, grow_pool, measure
from tests.conftest import opensearch, opensearch_settings  # noqa: F401

GROUP = "16. scale: kNN at k=10 as the pool grows, {engine} {option}"
FULL_SIZES = (13_014, 100_000, 1_000_000)
QUICK_SIZES = (2_000,)
CONFIGS = [(engine, option) for engine, options in OPTIONS.items() for option in options]
ROWS: list[dict] = []


def sizes() -> tuple[int, ...]:
    env = os.environ.get("XLIR_SCALE_SIZES")
    return tuple(int(s) for s in env.split(",")) if env else FULL_SIZES


def pytest_generate_tests(metafunc) -> None:
    if "size" in metafunc.fixturenames:
        quick = metafunc.config.getoption("benchmark_disable")
        metafunc.parametrize("size", QUICK_SIZES if quick else sizes())


@pytest.fixture(scope="module")
def queries(int8_encoder, questions) -> np.ndarray:
    return int8_encoder.encode_queries(questions)


@pytest.fixture(scope="module")
def grown(pool):
    """size -> (vectors, langs, the queries' exact 10th-best similarity); built once each."""
    sentences, vectors = pool
    cache: dict[int, tuple] = {}

    def get(size: int, queries: np.ndarray):
        if size not in cache:
            cache.clear()  # one large pool in memory at a time
            grown, langs = grow_pool(vectors, [s.lang for s in sentences], size)
            cache[size] = (grown, langs, exact_tenth(grown, queries))
        return cache[size]

    return get


@pytest.fixture(scope="module", autouse=True)
def write_rows():
    yield
    out = os.environ.get("XLIR_SCALE_JSON")
    if out and ROWS:
        Path(out).write_text(json.dumps({"rows": ROWS, "load_at_end": load_avg()}, indent=1))


@pytest.mark.parametrize(("engine", "option"), CONFIGS)
def test_scale(benchmark, request, int8_encoder, grown, queries, quick, size, engine, option):
    client = request.getfixturevalue("es" if engine == "elasticsearch" else "opensearch")
    vectors, langs, tenth = grown(size, queries)
    benchmark.group = GROUP.format(engine=engine, option=option)
    load_before = load_avg()
    row = benchmark.pedantic(
        lambda: measure(
            client, int8_encoder, option, vectors, langs, queries, tenth, 50 if quick else 200
        ),
        rounds=1,
        iterations=1,
    )
    result = row.as_dict() | {"load_before": load_before, "load_after": load_avg()}
    ROWS.append(result)
    benchmark.extra_info.update(result)
    assert row.p50_ms > 0 and row.store_mb > 0 and row.files_mb.get("graph", 0) > 0
    # a correctness floor (the wrong vectors or a broken id mapping find ~0), not a quality
    # goal: a million near-duplicate-dense vectors take bbq_hnsw to .77 at best (results/scale.md)
    best = max([*row.recall_by_candidates.values(), *row.recall_by_oversample.values()])
    assert best >= 0.5, row
