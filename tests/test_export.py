"""`python -m export.onnx`: parity-checked ONNX exports of a tiny encoder, and clear input errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.tiny_models import build_tiny_encoder
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.manifest import Manifest, sha256_file

pytestmark = pytest.mark.slow
PROBE = [
    "what is the capital city of the country",
    "wer ist der king of the land",
    "donde es la ciudad de madrid",
    "the river of paris was born in the year",
    "music science history football",
    "quand est la ville de rome",
]


def export(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export.onnx", "--quiet", *args], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    (root / "probe.txt").write_text("\n".join(PROBE) + "\n")
    return build_tiny_encoder(root / "model", hidden=128, layers=2), root / "probe.txt"


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_export_passes_parity_and_serves_the_measured_vectors(tiny, tmp_path, quantize):
    model, probe = tiny
    out = tmp_path / quantize
    result = export(
        "--model", str(model), "--output", str(out), "--quantize", quantize, "--probe", str(probe)
    )
    assert result.returncode == 0, result.stderr
    manifest = Manifest.load(out)
    assert manifest.sha256 == sha256_file(out / "model.onnx")
    assert manifest.dim == 128 and manifest.quantization == quantize
    assert manifest.parity["passed"] and manifest.parity["cosine_min"] >= 0.97
    assert manifest.encoder.query_prefix == "query: "

    from export.parity import torch_vectors
    from export.probe import load_probe

    served = OnnxEncoder(out).encode_passages(PROBE)  # a text probe file holds passages
    _, reference = torch_vectors(
        str(model), load_probe(probe), manifest.encoder, manifest.encoder.max_length
    )
    cosine = np.sum(served * reference, axis=1)
    assert cosine.min() >= (0.999 if quantize == "none" else 0.97)


def test_int8_is_under_40_percent_of_fp32(tiny, tmp_path):
    model, probe = tiny
    sizes = {}
    for quantize in ("none", "int8"):
        assert export("--model", str(model), "--output", str(tmp_path / quantize), "--quantize", quantize,
                      "--probe", str(probe)).returncode == 0  # fmt: skip
        sizes[quantize] = (tmp_path / quantize / "model.onnx").stat().st_size
    assert sizes["int8"] < 0.4 * sizes["none"]


def test_parity_failure_exits_nonzero_unless_forced(tiny, tmp_path):
    model, probe = tiny
    args = [
        "--model",
        str(model),
        "--quantize",
        "none",
        "--probe",
        str(probe),
        "--min-cosine",
        "1.01",
    ]
    failed = export(*args, "--output", str(tmp_path / "strict"))
    assert failed.returncode == 1 and "error:" in failed.stderr
    assert not (tmp_path / "strict" / "model.onnx").exists()
    forced = export(*args, "--output", str(tmp_path / "forced"), "--force")
    assert forced.returncode == 0 and "kept despite --force" in forced.stderr
    assert json.loads((tmp_path / "forced" / "xlir.json").read_text())["parity"]["forced"] is True


@pytest.mark.parametrize(
    "case, needle",
    [("missing", "not found"), ("not-encoder", "not a transformers model"), ("bad-quantize", "--quantize")],
)
def test_bad_input_is_one_line_and_exit_2(tiny, tmp_path, case, needle):
    model, _ = tiny
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a model")
    target = {
        "missing": tmp_path / "nope",
        "not-encoder": tmp_path / "empty",
        "bad-quantize": model,
    }[case]
    quantize = "int3" if case == "bad-quantize" else "int8"
    result = export(
        "--model", str(target), "--output", str(tmp_path / "out"), "--quantize", quantize
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and needle in lines[0], result.stderr
