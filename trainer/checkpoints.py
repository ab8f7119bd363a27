"""Saved models and checkpoints.

OUTPUT/                      model + tokenizer (transformers), xlir_encoder.json,
                             train_config.json
OUTPUT/checkpoints/step-N/   the same, plus optimizer.pt, scheduler.pt, scaler.pt,
                             trainer_state.json, rng-RANK.pt
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from trainer.config import TrainConfig
from trainer.distributed import Dist
from trainer.models import Encoder
from xlir_plugin.manifest import EncoderSettings

STATE_FILE = "trainer_state.json"


def save_model(directory: Path, encoder: Encoder, tokenizer, cfg: TrainConfig) -> None:
    """A `transformers` directory plus the pooling/prefix settings and the training config.

    The saved max length is the model's position limit (the export clamps it to what the
    architecture can use), not the short training lengths: serving should not truncate
    passages to what fitted a training batch."""
    directory.mkdir(parents=True, exist_ok=True)
    encoder.model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    EncoderSettings(
        pooling=encoder.pooling,
        normalize=encoder.normalize,
        query_prefix=cfg.q_prefix,
        passage_prefix=cfg.p_prefix,
        max_length=getattr(encoder.model.config, "max_position_embeddings", 512),
    ).save(directory)
    cfg.save(directory)


def checkpoints(output: Path) -> list[Path]:
    found = [p for p in (output / "checkpoints").glob("step-*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def find_resume(cfg: TrainConfig) -> Path | None:
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        found = checkpoints(Path(cfg.output))
        return found[-1] if found else None
    path = Path(cfg.resume)
    if not (path / STATE_FILE).is_file():
        raise FileNotFoundError(f"no checkpoint ({STATE_FILE}) in {path}")
    return path


def save_checkpoint(d: Dist, output: Path, step: int, parts: dict, state: dict, cfg) -> None:
    final = output / "checkpoints" / f"step-{step}"
    tmp = output / "checkpoints" / f".tmp-step-{step}"
    if d.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    d.barrier()
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, tmp / f"rng-{d.rank}.pt")
    d.barrier()
    if d.main:
        save_model(tmp, parts["encoder"], parts["tokenizer"], cfg)
        torch.save(parts["optimizer"].state_dict(), tmp / "optimizer.pt")
        torch.save(parts["scheduler"].state_dict(), tmp / "scheduler.pt")
        if parts["scaler"] is not None:
            torch.save(parts["scaler"].state_dict(), tmp / "scaler.pt")
        (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}, indent=2) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in checkpoints(output)[: -max(cfg.save_total_limit, 1)]:
            shutil.rmtree(old, ignore_errors=True)
    d.barrier()
