"""What one run of `python -m trainer.experiment` is: its settings and where its files go.

Shared by the runner (`experiment.py`) and the report (`experiment_report.py`), which reads
back what the runner wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from xlir_plugin.paths import data_dir

ARMS = ("base", "xx", "xy", "hybrid")
TIMINGS = "timings.json"
SETTINGS = "experiment.json"


@dataclass
class ExperimentConfig:
    output: str = "runs/experiment"
    base: str = "default"
    train_data: str = ""  # default: <shared data>/squad-dev-parallel
    eval_data: str = ""  # default: <shared data>/xquad-r
    arms: str = ",".join(ARMS)
    seeds: str = "42"
    steps: int = 240
    batch_size: int = 32
    lr: float = 3e-5
    alpha: float = 0.5
    passage_unit: str = "sentence"
    max_query_length: int = 48
    max_passage_length: int = 96
    freeze_embeddings: bool = True
    serve_max_length: int = 512
    threads: int = 0
    es_max_queries: int = 300
    eval_max_queries: int = 0
    eval_langs: str = ""
    report: str = ""  # default: <output>/RESULTS.md
    force: bool = False

    def __post_init__(self):
        unknown = set(self.arm_list) - set(ARMS)
        if unknown:
            raise ValueError(f"unknown arm(s) {sorted(unknown)}: choose from {ARMS}")
        self.train_data = self.train_data or str(data_dir() / "squad-dev-parallel")
        self.eval_data = self.eval_data or str(data_dir() / "xquad-r")
        self.threads = self.threads or os.cpu_count() or 1

    @property
    def arm_list(self) -> list[str]:
        return [a.strip() for a in self.arms.split(",") if a.strip()]

    @property
    def seed_list(self) -> list[int]:
        return [int(s) for s in self.seeds.split(",") if s.strip()]

    def runs(self) -> list[tuple[str, int | None]]:
        """(arm, seed) pairs; the base model is not trained, so it runs once without a seed."""
        pairs: list[tuple[str, int | None]] = []
        for arm in self.arm_list:
            pairs += [(arm, None)] if arm == "base" else [(arm, s) for s in self.seed_list]
        return pairs


def run_dir(cfg: ExperimentConfig, arm: str, seed: int | None) -> Path:
    return Path(cfg.output) / (arm if seed is None else f"{arm}-s{seed}")
