"""Two CPU processes under torch.distributed.run (gloo): they finish and agree on the weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_trainer_data import write_parallel_squad
from tests.tiny_models import build_tiny_encoder

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_ranks_train_and_agree(tmp_path):
    base = build_tiny_encoder(tmp_path / "tiny")
    data = write_parallel_squad(tmp_path / "data")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "trainer", "--base", base, "--data", data, "--output", out, "--batch-size", 8,
           "--max-steps", 8, "--lr", "1e-3", "--eval-every", 4, "--save-every", 4,
           "--val-fraction", 0.1, "--max-query-length", 16, "--max-passage-length", 24,
           "--device", "cpu", "--no-progress"]  # fmt: skip
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [str(c) for c in cmd], cwd=REPO, env=env, capture_output=True, text=True, timeout=180
    )
    assert res.returncode == 0, res.stderr[-3000:]

    sums = [(out / f"rank{r}_checksum.txt").read_text().strip() for r in (0, 1)]
    assert sums[0] == sums[1]
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 8 and summary["ranks_agree"]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 9))  # rank 0 alone writes the log
    assert (out / "checkpoints" / "step-8" / "rng-1.pt").is_file()
    assert (out / "xlir_encoder.json").is_file() and (out / "config.json").is_file()

    import torch
    from transformers import AutoModel

    trained, start = AutoModel.from_pretrained(out), AutoModel.from_pretrained(base)
    key = "encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(trained.state_dict()[key], start.state_dict()[key])  # it trained
