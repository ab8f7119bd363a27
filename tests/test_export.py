"""`python -m export.onnx`: parity-checked ONNX exports of a tiny encoder, and clear input errors.

Each export costs seconds, so the none/int8 exports are built once per module; all but one
run through `export.onnx.main` in-process (the `python -m` entry point is exercised by the
fp32 export and the bad-input cases).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from export.onnx import main
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


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    """quantization -> exported directory, for none (via `python -m`) and int8 (in-process)."""
    model, probe = tiny
    root = tmp_path_factory.mktemp("exported")
    common = ["--model", str(model), "--probe", str(probe)]
    result = export(*common, "--output", str(root / "none"), "--quantize", "none")
    assert result.returncode == 0, result.stderr
    assert main([*common, "--output", str(root / "int8"), "--quantize", "int8", "--quiet"]) == 0
    return {"none": root / "none", "int8": root / "int8"}


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_export_passes_parity_and_serves_the_measured_vectors(tiny, exported, quantize):
    model, probe = tiny
    out = exported[quantize]
    manifest = Manifest.load(out)
    assert manifest.sha256 == sha256_file(out / "model.onnx")
    assert manifest.dim == 128 and manifest.quantization == quantize
    assert manifest.output == "sentence_embedding" and manifest.pooling_in_graph
    assert manifest.parity["passed"] and manifest.parity["cosine_min"] >= 0.97
    assert manifest.encoder.query_prefix == "query: " and manifest.encoder.max_length == 128
    assert manifest.onnxruntime_version and manifest.opset >= 13
    assert manifest.file_sizes["model.onnx"] == (out / "model.onnx").stat().st_size
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (out / name).is_file()
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".onnx") == ["model.onnx"]

    from export.parity import torch_vectors
    from export.probe import load_probe

    served = OnnxEncoder(out).encode_passages(PROBE)  # a text probe file holds passages
    assert served.shape == (len(PROBE), 128)
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    _, reference = torch_vectors(
        str(model), load_probe(probe), manifest.encoder, manifest.encoder.max_length
    )
    cosine = np.sum(served * reference, axis=1)
    assert cosine.min() >= (0.999 if quantize == "none" else 0.97)
    assert cosine.min() == pytest.approx(manifest.parity["cosine_min"], abs=1e-4)


def test_int8_is_under_40_percent_of_fp32(exported):
    sizes = {q: (d / "model.onnx").stat().st_size for q, d in exported.items()}
    assert sizes["int8"] < 0.4 * sizes["none"]


def test_fp16_is_half_the_size_and_passes_parity_on_cpu(tiny, exported, tmp_path):
    model, probe = tiny
    out = tmp_path / "fp16"
    assert main(["--model", str(model), "--output", str(out), "--quantize", "fp16",
                 "--probe", str(probe), "--quiet"]) == 0  # fmt: skip
    manifest = Manifest.load(out)
    assert manifest.quantization == "fp16" and manifest.parity["passed"]
    fp32 = (exported["none"] / "model.onnx").stat().st_size
    assert (out / "model.onnx").stat().st_size < 0.6 * fp32
    vectors = OnnxEncoder(out).encode_queries(PROBE[:2])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 128)


def test_numpy_pooling_serves_the_same_vectors(tiny, exported, tmp_path):
    model, probe = tiny
    out = tmp_path / "numpy"
    assert main(["--model", str(model), "--output", str(out), "--quantize", "none",
                 "--probe", str(probe), "--pooling", "numpy", "--quiet"]) == 0  # fmt: skip
    manifest = Manifest.load(out)
    assert not manifest.pooling_in_graph and manifest.output == "last_hidden_state"
    np.testing.assert_allclose(
        OnnxEncoder(out).encode_queries(PROBE),
        OnnxEncoder(exported["none"]).encode_queries(PROBE),
        atol=1e-5,
    )


def test_parity_failure_exits_1_unless_forced(tiny, tmp_path, capsys):
    model, probe = tiny
    args = ["--model", str(model), "--quantize", "none", "--probe", str(probe),
            "--min-cosine", "1.01", "--quiet"]  # fmt: skip
    assert main([*args, "--output", str(tmp_path / "strict")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: parity check failed"), err
    assert not (tmp_path / "strict").exists()
    assert main([*args, "--output", str(tmp_path / "forced"), "--force"]) == 0
    assert "kept despite --force" in capsys.readouterr().err
    parity = json.loads((tmp_path / "forced" / "xlir.json").read_text())["parity"]
    assert parity["forced"] is True and parity["passed"] is False


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "not found"),
        ("not-encoder", "not a transformers model"),
        ("bad-quantize", "--quantize"),
    ],
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
    assert not (tmp_path / "out").exists()


def test_a_decoder_is_refused(tmp_path, capsys):
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=16, n_head=2, architectures=["GPT2LMHeadModel"]).save_pretrained(
        tmp_path / "gpt2"
    )
    assert main(["--model", str(tmp_path / "gpt2"), "--output", str(tmp_path / "out")]) == 2
    assert "not an encoder" in capsys.readouterr().err


def test_xquad_r_probe_is_fixed_and_multilingual(xquad_dir):
    from export.probe import LANGS, xquad_r_probe

    probe = xquad_r_probe(root=xquad_dir)
    assert len(probe.queries) == len(probe.passages) == 100
    assert probe.queries == xquad_r_probe(root=xquad_dir).queries
    assert len(set(probe.queries)) == 100 and len(LANGS) == 11


def test_probe_file_jsonl_kinds(tmp_path):
    from export.probe import file_probe

    path = tmp_path / "probe.jsonl"
    path.write_text('{"query": "wo ist paris"}\n{"text": "paris is a city", "kind": "passage"}\n')
    probe = file_probe(path)
    assert probe.queries == ["wo ist paris"] and probe.passages == ["paris is a city"]


def test_cpu_preset_from_flags():
    from export.quantize import cpu_preset

    assert cpu_preset("flags\t: fpu avx2 avx512f avx512_vnni") == "avx512_vnni"
    assert cpu_preset("flags\t: fpu avx2 avx512f") == "avx512"
    assert cpu_preset("flags\t: fpu sse avx2") == "avx2"
    assert cpu_preset("Features\t: fp asimd") == "arm64"


def test_ensure_exported_builds_once(tiny, tmp_path, monkeypatch):
    from export import ensure_exported, exported_dir

    model, _ = tiny
    monkeypatch.setenv("XLIR_CACHE", str(tmp_path / "cache"))
    assert exported_dir("default", "int8").name == "multilingual-e5-small-onnx-int8"
    assert exported_dir("default", "none").name == "multilingual-e5-small-onnx-fp32"
    out = ensure_exported(str(model), "int8")
    assert out == tmp_path / "cache" / "models" / "model-onnx-int8"
    assert Manifest.load(out).parity["probe"].startswith("xquad-r")
    stamp = (out / "model.onnx").stat().st_mtime_ns
    assert ensure_exported(str(model), "int8") == out
    assert (out / "model.onnx").stat().st_mtime_ns == stamp
    (model / "xlir_encoder.json").touch()  # the source changed after the export: rebuilt
    assert ensure_exported(str(model), "int8") == out
    assert (out / "model.onnx").stat().st_mtime_ns != stamp


def test_external_data_for_big_models(tiny, tmp_path, monkeypatch):
    """Over 2 GB (e.g. XLM-R large) the weights go to model.onnx_data beside model.onnx."""
    from export import graph
    from export.pipeline import export_model

    model, probe = tiny
    monkeypatch.setattr(graph, "EXTERNAL_DATA_THRESHOLD", 0)
    result = export_model(
        str(model), tmp_path / "big", quantize="none", probe=probe, progress=False
    )
    out = result.output
    assert (out / "model.onnx_data").is_file()
    assert result.manifest.file_sizes["model.onnx_data"] > result.manifest.file_sizes["model.onnx"]
    assert OnnxEncoder(out).encode_queries(PROBE[:2]).shape == (2, 128)
