"""A fine-tuned model as an int8 delta over the base: made and applied with numpy only."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from xlir_plugin.model_delta import DeltaError, apply_delta, make_delta, quantize_rows


def write_model(directory, weights):
    directory.mkdir(parents=True)
    save_file(weights, str(directory / "model.safetensors"))
    (directory / "config.json").write_text('{"model_type": "bert"}')
    (directory / "tokenizer.json").write_text("{}")
    return directory


def test_quantize_rows_bounds_the_error():
    diff = np.random.default_rng(0).normal(size=(16, 64)).astype(np.float32)
    diff[3] = 0.0  # an unchanged row stays exactly zero
    q, scale = quantize_rows(diff)
    assert q.dtype == np.int8 and scale.shape == (16,)
    rebuilt = q.astype(np.float32) * scale[:, None]
    assert np.all(np.abs(rebuilt - diff) <= scale[:, None] / 2 + 1e-7)
    assert not rebuilt[3].any()


def test_round_trip_changes_only_what_training_moved(tmp_path):
    rng = np.random.default_rng(1)
    base = {
        "embeddings.word_embeddings.weight": rng.normal(size=(100, 8)).astype(np.float32),
        "encoder.layer.0.dense.weight": rng.normal(size=(8, 8)).astype(np.float32),
        "encoder.layer.0.dense.bias": rng.normal(size=8).astype(np.float32),
    }
    tuned = {k: v.copy() for k, v in base.items()}
    tuned["encoder.layer.0.dense.weight"] += 0.01 * rng.normal(size=(8, 8)).astype(np.float32)
    tuned["encoder.layer.0.dense.bias"] += 0.1
    tuned["pooler.dense.weight"] = np.ones((8, 8), np.float32)  # unused by mean pooling
    base_dir = write_model(tmp_path / "base", base)
    tuned_dir = write_model(tmp_path / "tuned", tuned)
    (tuned_dir / "xlir_encoder.json").write_text('{"pooling": "mean"}')

    stats = make_delta(base_dir, tuned_dir, tmp_path / "delta", {"steps": 3})
    assert stats["changed_tensors"] == 2 and stats["unchanged_tensors"] == 1
    assert stats["dropped_tensors"] == ["pooler.dense.weight"]
    assert stats["max_relative_error"] < 1e-2
    stored = load_file(str(tmp_path / "delta" / "delta.safetensors"))
    assert "embeddings.word_embeddings.weight.q" not in stored  # the frozen table is not shipped
    assert stored["encoder.layer.0.dense.weight.q"].dtype == np.int8

    out = apply_delta(base_dir, tmp_path / "delta", tmp_path / "out")
    got = load_file(str(out / "model.safetensors"))
    assert "pooler.dense.weight" not in got
    for name in base:
        np.testing.assert_allclose(got[name], tuned[name], atol=1e-3)
    assert np.array_equal(got["encoder.layer.0.dense.bias"], tuned["encoder.layer.0.dense.bias"])
    assert (out / "config.json").is_file() and (out / "xlir_encoder.json").is_file()
    assert json.loads((out / "delta.json").read_text())["provenance"] == {"steps": 3}


def test_a_delta_refuses_another_base(tmp_path):
    rng = np.random.default_rng(2)
    base = {"w": rng.normal(size=(4, 4)).astype(np.float32)}
    base_dir = write_model(tmp_path / "base", base)
    tuned_dir = write_model(tmp_path / "tuned", {"w": base["w"] + 1})
    make_delta(base_dir, tuned_dir, tmp_path / "delta", {})
    other = write_model(tmp_path / "other", {"w": base["w"] * 2})
    with pytest.raises(DeltaError, match="another base"):
        apply_delta(other, tmp_path / "delta", tmp_path / "out")
    with pytest.raises(DeltaError, match="not a model delta"):
        apply_delta(base_dir, tmp_path / "base", tmp_path / "out")


def test_export_delta_cli_records_provenance(tmp_path, capsys):
    from export.delta import main

    rng = np.random.default_rng(3)
    base = {"w": rng.normal(size=(4, 4)).astype(np.float32)}
    base_dir = write_model(tmp_path / "base", base)
    tuned_dir = write_model(tmp_path / "tuned", {"w": base["w"] + 0.01})
    (tuned_dir / "train_config.json").write_text(json.dumps({"seed": 7, "output": "runs/x"}))
    (tuned_dir / "train_summary.json").write_text(json.dumps({"steps": 9, "best_step": 6}))
    (tuned_dir / "xlir_encoder.json").write_text(json.dumps({"max_length": 64}))
    result = tmp_path / "results.json"
    result.write_text(json.dumps({"backends": {"exact": {"mean": {"mono": 0.8, "multi": 0.6}}}}))
    out = tmp_path / "delta"
    args = ["--model", str(tuned_dir), "--output", str(out), "--base", str(base_dir),
            "--commit", "abc123", "--eval", f"int8={result}"]  # fmt: skip
    assert main(args) == 0
    prov = json.loads((out / "delta.json").read_text())["provenance"]
    assert prov["train_config"] == {"seed": 7} and prov["best_step"] == 6
    assert prov["training_commit"] == "abc123" and prov["eval"]["int8"]["multi"] == 0.6
    # serving keeps the base's max length, not the short training length
    assert json.loads((out / "xlir_encoder.json").read_text())["max_length"] == 512
    assert main(["--model", str(base_dir), "--output", str(out)]) == 2
    assert "no train_config.json" in capsys.readouterr().err
