"""A 30-step CPU run of a tiny encoder: loss goes down, checkpoints, resume, reload."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.test_trainer_data import write_parallel_squad
from tests.tiny_models import build_tiny_encoder
from trainer.__main__ import main
from trainer.config import TrainConfig, parse_args

pytestmark = pytest.mark.slow


def read_log(output: Path) -> tuple[list[dict], list[dict]]:
    rows = [json.loads(x) for x in (output / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if "loss" in r], [r for r in rows if "val_loss" in r]


def cli_args(base, data, output, steps=30):
    return [
        "--base", str(base), "--data", str(data), "--output", str(output),
        "--batching", "hybrid", "--alpha", "0.5", "--batch-size", "8",
        "--max-steps", str(steps), "--lr", "2e-3", "--warmup-steps", "3",
        "--max-query-length", "16", "--max-passage-length", "40",
        "--eval-steps", "10", "--eval-batches", "4", "--val-fraction", "0.2",
        "--save-steps", "15", "--save-total-limit", "3", "--no-progress", "--seed", "3",
        "--num-threads", "1",  # tiny model: one thread is fastest on a busy 2-core box
    ]  # fmt: skip


def test_cli_parses_into_config(tmp_path):
    d = str(tmp_path)
    cfg = parse_args(["--data", d, "--batching", "xy", "--no-prefixes", "--freeze-embeddings"])
    assert cfg.batching == "xy" and cfg.freeze_embeddings and cfg.q_prefix == cfg.p_prefix == ""
    assert cfg.temperature == 0.05 and cfg.weight_decay == 0.01 and cfg.alpha == 0.5
    assert parse_args(["--data", d, "--eval-every", "7"]).eval_steps == 7
    assert parse_args(["--data", d, "--resume"]).resume == "auto"
    for bad in (["--data", d, "--batching", "yx"], ["--data", d, "--alpha", "2"],
                ["--data", str(tmp_path / "missing")]):  # fmt: skip
        with pytest.raises(SystemExit):
            parse_args(bad)
    with pytest.raises(ValueError):
        TrainConfig(alpha=1.5)


def test_train_30_steps_checkpoint_resume_reload(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from xlir_plugin.manifest import EncoderSettings

    base = build_tiny_encoder(tmp_path / "base")
    data = write_parallel_squad(tmp_path / "data", articles=16)
    out = tmp_path / "run"
    assert main(cli_args(base, data, out)) == 0

    steps, evals = read_log(out)
    assert [r["step"] for r in steps] == list(range(1, 31))
    assert {r["batch_type"] for r in steps} == {"xx", "xy"}
    assert [e["step"] for e in evals] == [10, 20, 30]
    first = sum(r["loss"] for r in steps[:8]) / 8
    last = sum(r["loss"] for r in steps[-8:]) / 8
    assert last < 0.9 * first, (first, last)
    assert steps[0]["lr"] == 0.0 and steps[3]["lr"] == pytest.approx(2e-3)  # warmup, then decay
    assert steps[-1]["lr"] < steps[10]["lr"]

    ckpts = sorted((out / "checkpoints").iterdir())
    assert [c.name for c in ckpts] == ["step-15", "step-30"]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["steps"] == 30
    best = min(evals, key=lambda e: e["val_loss"])
    assert summary["best_step"] == best["step"] and [e["best"] for e in evals][0]

    # the output directory loads with transformers and carries the export settings
    model = AutoModel.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    settings = EncoderSettings.load(out)
    assert (settings.pooling, settings.query_prefix, settings.passage_prefix) == (
        "mean", "query: ", "passage: ")  # fmt: skip
    assert json.loads((out / "train_config.json").read_text())["batching"] == "hybrid"
    enc = tok(["query: the capital"], return_tensors="pt")
    assert model(**enc).last_hidden_state.shape[-1] == 32
    base_model = AutoModel.from_pretrained(base)
    assert not torch.equal(
        model.embeddings.word_embeddings.weight, base_model.embeddings.word_embeddings.weight
    )

    # resume from step 15 into a fresh directory: the same losses and weights as the first run
    cfg = replace(parse_args(cli_args(base, data, tmp_path / "resumed")), resume=str(ckpts[0]))
    from trainer.train import train

    resumed = train(cfg)
    assert resumed["resumed_from_step"] == 15 and resumed["steps"] == 30
    steps2, _ = read_log(tmp_path / "resumed")
    assert [r["step"] for r in steps2] == list(range(16, 31))
    for a, b in zip(steps[15:], steps2, strict=True):
        assert a["batch_type"] == b["batch_type"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
    w1 = AutoModel.from_pretrained(out / "checkpoints" / "step-30").state_dict()
    w2 = AutoModel.from_pretrained(tmp_path / "resumed" / "checkpoints" / "step-30").state_dict()
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)


def test_frozen_embeddings_and_cls_pooling(tmp_path):
    base = build_tiny_encoder(tmp_path / "base")
    data = write_parallel_squad(tmp_path / "data")
    out = tmp_path / "frozen"
    args = cli_args(base, data, out, steps=4) + [
        "--freeze-embeddings", "--pooling", "cls", "--batching", "xx", "--eval-steps", "0",
        "--save-steps", "0", "--passage-unit", "sentence", "--symmetric",
    ]  # fmt: skip
    assert main(args) == 0
    from transformers import AutoModel

    from xlir_plugin.manifest import EncoderSettings

    before, after = AutoModel.from_pretrained(base), AutoModel.from_pretrained(out)
    emb = "embeddings.word_embeddings.weight"
    assert torch.equal(before.state_dict()[emb], after.state_dict()[emb])
    layer = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(before.state_dict()[layer], after.state_dict()[layer])
    assert EncoderSettings.load(out).pooling == "cls"
    steps, _ = read_log(out)
    assert {r["batch_type"] for r in steps} == {"xx"} and len(steps) == 4


def test_distillation_pulls_translations_to_the_frozen_teacher(tmp_path):
    """With --distill-data the loop adds the distillation loss, validates it, and the
    distance of a translation to the teacher's English vector goes down."""
    from tests.test_trainer_parallel import write_jsonl

    base = build_tiny_encoder(tmp_path / "base")
    data = write_parallel_squad(tmp_path / "data", articles=12)
    words = __import__("tests.tiny_models", fromlist=["WORDS"]).WORDS
    rows = [{"id": str(i), "doc_id": f"d{i % 9}",
             "text": {"en": " ".join(words[i % 40 : i % 40 + 5]),
                      "de": " ".join(reversed(words[i % 40 : i % 40 + 5]))}}
            for i in range(60)]  # fmt: skip
    pairs = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "distilled"
    args = cli_args(base, data, out, steps=20) + [
        "--distill-data", f"{pairs}:2,qa", "--distill-batch-size", "8", "--distill-weight", "5",
        "--save-steps", "0", "--eval-steps", "10",
    ]  # fmt: skip
    assert main(args) == 0
    steps, evals = read_log(out)
    assert all("distill_loss" in r and "qa_loss" in r for r in steps)
    assert all(r["loss"] == pytest.approx(r["qa_loss"] + 5 * r["distill_loss"], rel=1e-3)
               for r in steps)  # fmt: skip
    assert [e["step"] for e in evals] == [10, 20] and all("val_distill" in e for e in evals)
    first = sum(r["distill_loss"] for r in steps[:5]) / 5
    last = sum(r["distill_loss"] for r in steps[-5:]) / 5
    assert last < first, (first, last)
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["distill_pairs"][str(pairs)] > 0 and summary["distill_pairs"]["qa"] > 0
