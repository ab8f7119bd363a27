"""Processes and devices: one process, or one per device under `torchrun` (DDP)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from trainer.config import TrainConfig


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def mean(self, value: float) -> float:
        if self.world_size == 1:
            return float(value)
        t = torch.tensor([float(value)], dtype=torch.float64)
        t = t.to(self.device) if self.device.type == "cuda" else t
        dist.all_reduce(t)
        return t.item() / self.world_size

    def sum(self, values: list[float]) -> list[float]:
        if self.world_size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        t = t.to(self.device) if self.device.type == "cuda" else t
        dist.all_reduce(t)
        return t.cpu().tolist()


def setup(cfg: TrainConfig) -> Dist:
    """Start torch.distributed when WORLD_SIZE > 1 (nccl on GPU, gloo on CPU); pick device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    want = cfg.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        want = f"cuda:{local_rank}"
    device = torch.device(want)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:
        n = cfg.num_threads or max(1, (os.cpu_count() or 1) // max(local_world, 1))
        torch.set_num_threads(n)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local_rank, local_world, device)


def precision_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for fp32."""
    p = cfg.precision
    if p == "auto":
        if device.type != "cuda":
            return None
        p = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if p == "fp32":
        return None
    if p == "fp16" and device.type != "cuda":
        raise ValueError("fp16 needs a GPU; use --precision bf16 or fp32 on CPU")
    return torch.bfloat16 if p == "bf16" else torch.float16


def compare_ranks(model: torch.nn.Module, d: Dist) -> dict:
    """Per-parameter sums on every rank, gathered: DDP ranks must hold identical weights."""
    sums = torch.stack([p.detach().double().sum() for p in model.parameters()]).cpu()
    sums = sums.to(d.device) if d.device.type == "cuda" else sums
    gathered = [torch.zeros_like(sums) for _ in range(d.world_size)]
    dist.all_gather(gathered, sums)
    diff = max(float((g - gathered[0]).abs().max()) for g in gathered)
    return {
        "rank_param_checksums": [float(g.sum()) for g in gathered],
        "rank_max_param_diff": diff,
        "ranks_agree": diff == 0.0,
    }
