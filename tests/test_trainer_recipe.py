"""The GPU recipe end to end on CPU, tiny: pack -> two configurations trained at once ->
ranked on validation -> delta in parts under 16 MiB -> applied to the bundled default with
numpy alone -> the trained model's vectors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from trainer.data import load_examples
from trainer.models import Encoder
from trainer.pack import SQUAD, PackConfig, make_pack
from trainer.recipe import CONFIGS, DELTA, RecipeConfig, main, train_command
from xlir_plugin.default_model import resolve_hf_model
from xlir_plugin.model_delta import apply_delta

RUNS = ("paragraph", "sentence-distill")


def vectors(model, texts: list[str]) -> np.ndarray:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    with torch.no_grad():
        enc = Encoder.from_pretrained(str(model)).eval()
        return enc(**tokenizer(texts, padding=True, return_tensors="pt")).numpy()


def test_every_configuration_trains_as_the_issue_asks(tmp_path):
    cfg = RecipeConfig()
    for name in CONFIGS:
        cmd = train_command(cfg, name, tmp_path / "base", tmp_path / "data", tmp_path / name)
        flags = dict(zip(cmd, cmd[1:], strict=False))
        assert "--freeze-embeddings" in cmd and flags["--batching"] == "hybrid"
        assert int(flags["--batch-size"]) >= 128 and int(flags["--patience"]) > 0
        assert flags["--data"] == str(tmp_path / "data" / "squad" / "train")  # never val
        if "distill" in name:
            assert flags["--distill-data"] == str(tmp_path / "data" / "ntrex128.jsonl")
            assert float(flags["--distill-weight"]) < 10  # low: the trainer's default is 10
    assert cfg.budget_s < 600


def test_an_unknown_configuration_is_refused(capsys):
    assert main(["--pack", "nowhere", "--configs", "paragraph,bogus"]) == 2
    assert "unknown configurations ['bogus']" in capsys.readouterr().err


@pytest.mark.slow
def test_the_recipe_trains_ranks_and_ships_a_delta(tmp_path):
    pack, out, work = tmp_path / "pack", tmp_path / "out", tmp_path / "work"
    cfg = PackConfig(output=str(pack), langs="en,es", max_groups=60, ntrex_ids=8,
                     wheels=False, xz_preset=0)  # fmt: skip
    make_pack(cfg)
    args = ["--pack", str(pack), "--output", str(out), "--work", str(work),
            "--configs", ",".join(RUNS), "--batch-size", "4", "--max-steps", "2",
            "--eval-steps", "1", "--eval-batches", "1", "--max-query-length", "16",
            "--max-passage-length", "32", "--lr", "1e-3", "--threads", "1", "--device", "cpu"]  # fmt: skip
    assert main(args) == 0

    result = json.loads((out / "validation.json").read_text())
    runs = result["runs"]
    assert set(runs) == {"base", *RUNS}
    assert result["best"] == max(RUNS, key=lambda n: runs[n]["score"])
    assert all(runs[n]["steps"] == 2 for n in RUNS)
    assert "distill_pairs" in runs["sentence-distill"] and "distill_pairs" not in runs["paragraph"]
    assert f"| {result['best']} (best) |" in (out / "validation.md").read_text()
    # what the device tool brings back: at most 8 files, each under 16 MiB, 2 folders down
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and all(p.stat().st_size < 16 * 2**20 for p in files)
    assert all(len(p.relative_to(out).parts) <= 3 for p in files)

    # bring back and ship: join the parts, apply to the bundled default (not the packed base)
    delta = tmp_path / "delta"
    shutil.copytree(out / "delta", delta)
    parts = sorted(delta.glob(f"{DELTA}.*"))
    assert len(parts) >= 2  # ~21 MB of int8 layers: more than one file's worth
    (delta / DELTA).write_bytes(b"".join(p.read_bytes() for p in parts))
    stored = load_file(str(delta / DELTA))
    assert not any(k.startswith("embeddings.word_embeddings") for k in stored)
    meta = json.loads((delta / "delta.json").read_text())
    assert meta["provenance"]["train_config"]["freeze_embeddings"] is True
    assert meta["provenance"]["base"] == "default"
    shipped = apply_delta(resolve_hf_model("default"), delta, tmp_path / "shipped")

    # validation text: its tokens' rows are the same in the packed base and the default
    ds = load_examples(work / "data" / SQUAD / "val", unit="sentence").ds
    texts = ["query: " + q for q in ds["question"][:4]] + [
        "passage: " + p for p in ds["passage"][:4]
    ]
    trained = vectors(work / "runs" / result["best"], texts)
    assert not np.allclose(trained, vectors(resolve_hf_model("default"), texts), atol=1e-3)
    np.testing.assert_allclose(vectors(shipped, texts), trained, atol=2e-3)
