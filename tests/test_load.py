"""One encoder shared by many threads gives what it gives to one (the load benchmark's premise).

The load itself (8 clients searching beside an ingest, latency, leaks) is
`benchmarks/test_load.py`; under `--benchmark-disable` it runs for 3 s in CI.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from tests.onnx_fixtures import build_onnx_model
from xlir_plugin.encoder import OnnxEncoder

WORDS = [f"w{i}" for i in range(300)]


def test_load_shared_encoder_concurrent_encode_equals_sequential(tmp_path):
    build_onnx_model(tmp_path, WORDS, dim=32, max_length=64)
    encoder = OnnxEncoder(tmp_path, threads=2, batch_size=16)
    rng = np.random.default_rng(0)
    chunks = []
    for c in range(16):  # chunk c holds c % 4 texts longer than max_length (truncated)
        lengths = [int(x) for x in rng.integers(1, 40, size=24)]
        lengths[: c % 4] = [100] * (c % 4)
        chunks.append([" ".join(rng.choice(WORDS, size=n)) for n in lengths])
    expected = []
    for chunk in chunks:
        expected.append((encoder.encode_passages(chunk, warn=False), encoder.last_truncated))

    def encode(c: int):
        return encoder.encode_passages(chunks[c], warn=False), encoder.last_truncated

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(encode, [c for _ in range(4) for c in range(len(chunks))]))
    for i, (vectors, truncated) in enumerate(got):
        want, want_truncated = expected[i % len(chunks)]
        np.testing.assert_allclose(vectors, want, rtol=0, atol=1e-6)
        assert truncated == want_truncated == (i % len(chunks)) % 4
