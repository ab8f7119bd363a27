"""`python -m trainer.projection`: fit the default model's alignment head with hybrid batches.

    python -m trainer.projection --output runs/projection --seeds 0,1,2

The encoder stays frozen; a linear map on its output vector (`xlir_plugin.projection`,
initialised to the identity) is trained with the paper's objective: InfoNCE with in-batch
negatives over hybrid batches (X-X with probability alpha, else X-Y; `HybridBatchSampler`),
one batch of question -> answer-sentence pairs (squad-dev-parallel) and one X-Y batch of
sentence -> translation pairs (NTREX-128, all 11 XQuAD-R languages; an X-X pair of one
sentence would teach nothing) per step; `--tatoeba-weight` adds a third, Tatoeba X-Y batch
(measured: no gain on validation, results/projection.md). Every `--eval-every` steps
the head is scored on held-out groups of every set exactly as `xlir eval` scores XQuAD-R
(Mono, Cross, Multi, rank distance); the best step by the mean of their mAPs is kept.
XQuAD-R is never read here.

Why a head and not the whole encoder: on 2 CPU cores a full fine-tuning step takes 25-50 s
(the runs in results/hybrid-batching.md), and those runs lost Mono. The head trains in
seconds on cached vectors, cannot forget what the encoder knows (identity start, frozen
encoder), ships as 590 KB, and is served in both runtimes as two graph nodes.

Output: `seed{N}.npz` per seed (a `Projection`), `summary.json` (figures per seed and the
mean +- spread) and the head of the best seed by validation as `projection.npz`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from trainer.config import build_parser, option
from trainer.losses import info_nce
from trainer.projection_data import (
    VectorSet,
    encode_set,
    ntrex_texts,
    squad_texts,
    tatoeba_texts,
)
from trainer.samplers import HybridBatchSampler
from xlir_plugin.evaluation.run import evaluate_vectors
from xlir_plugin.paths import data_dir
from xlir_plugin.projection import Projection

VAL_COLUMNS = ("mono", "cross", "multi", "rank_distance")


@dataclass
class ProjectionConfig:
    output: str = option("runs/projection", "output directory (vectors cache, heads, summary)")
    base: str = option("e5-small-base", "the frozen encoder: an exported dir or a bundled name")
    squad: str = option("", "squad-dev-parallel dir (default: $XLIR_DATA/squad-dev-parallel)")
    ntrex: str = option("", "ntrex128.jsonl (default: $XLIR_DATA/ntrex128/ntrex128.jsonl)")
    ntrex_ids: int = option(1200, "NTREX sentences used (seeded subset; 0: all 1,997)")
    ntrex_weight: float = option(1.0, "weight of the NTREX loss against the squad loss")
    tatoeba: str = option("", "tatoeba_multiway_by_en.jsonl (default: $XLIR_DATA/tatoeba/...)")
    tatoeba_weight: float = option(0.0, "weight of a Tatoeba X-Y loss (0: Tatoeba not used)")
    steps: int = option(1000, "optimizer steps")
    batch_size: int = option(256, "pairs per batch (each source)")
    alpha: float = option(0.5, "hybrid: probability of an X-X batch")
    temperature: float = option(0.05, "softmax temperature over cosine scores")
    lr: float = option(3e-4, "AdamW learning rate")
    weight_decay: float = option(0.0, "AdamW weight decay (pulls W toward 0, not the identity)")
    val_fraction: float = option(0.1, "share of groups held out for validation (both sets)")
    eval_every: int = option(100, "validation every N steps")
    seeds: str = option("0,1,2", "comma-separated seeds: one head per seed")
    threads: int = option(0, "encoder threads (0: all cores)")
    progress: bool = option(True, "progress bars")

    @property
    def seed_list(self) -> list[int]:
        return [int(s) for s in self.seeds.split(",") if s.strip()]


def validate(head: Projection, sets: list[VectorSet]) -> dict:
    """Mono/Cross/Multi mAP and rank distance per held-out set, and `score`: the mean of the
    mAPs of every set (so a run with Tatoeba is scored on it too)."""
    out: dict = {}
    for s in sets:
        data, queries, cands = s.as_lareqa()
        result = evaluate_vectors(
            data, head.apply(queries), head.apply(cands), backends=("exact",), progress=False
        )
        mean = result.backends["exact"].mean
        out[s.name] = {c: round(float(mean[c]), 4) for c in VAL_COLUMNS}
    maps = [v[c] for v in out.values() for c in ("mono", "cross", "multi")]
    out["score"] = round(float(np.mean(maps)), 4)
    return out


def _batches(s: VectorSet, cfg: ProjectionConfig, seed: int):
    sampler = HybridBatchSampler(
        s.pids,
        s.langs,
        s.groups,
        batch_size=cfg.batch_size,
        batching="xy" if s.xy_only else "hybrid",
        alpha=cfg.alpha,
        seed=seed,
    )
    return iter(sampler)


def train_head(
    train: list[VectorSet], val: list[VectorSet], cfg: ProjectionConfig, seed: int
) -> tuple[Projection, list[dict]]:
    """One seed: the head at its best validation step, and the validation history."""
    torch.manual_seed(seed)
    start = Projection.identity(train[0].queries.shape[1])
    weight = torch.nn.Parameter(torch.from_numpy(start.weight.copy()))
    bias = torch.nn.Parameter(torch.from_numpy(start.bias.copy()))
    opt = torch.optim.AdamW([weight, bias], lr=cfg.lr, weight_decay=cfg.weight_decay)
    weights = [1.0, cfg.ntrex_weight, cfg.tatoeba_weight][: len(train)]
    streams = [_batches(s, cfg, seed + 1000 * i) for i, s in enumerate(train)]

    def head() -> Projection:
        return Projection(weight.detach().numpy().copy(), bias.detach().numpy().copy())

    def project(x: np.ndarray) -> torch.Tensor:
        return F.normalize(torch.from_numpy(x) @ weight + bias, dim=-1)

    figures = validate(start, val)
    best, best_score, history = start, figures["score"], [{"step": 0, **figures}]
    for step in tqdm(range(1, cfg.steps + 1), desc=f"head seed {seed}", disable=not cfg.progress):
        loss = torch.zeros(())
        for s, w, stream in zip(train, weights, streams, strict=True):
            batch = next(stream)
            q = project(s.queries[batch.query_rows])
            p = project(s.passages[batch.passage_rows])
            loss = loss + w * info_nce(q, p, cfg.temperature)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            figures = validate(head(), val)
            history.append({"step": step, "loss": round(float(loss.detach()), 4), **figures})
            if figures["score"] > best_score:
                best, best_score = head(), figures["score"]
    return best, history


def load_sets(cfg: ProjectionConfig) -> list[VectorSet]:
    from xlir_plugin.encoder import OnnxEncoder
    from xlir_plugin.models import resolve_served_model

    root = data_dir()
    squad = Path(cfg.squad) if cfg.squad else root / "squad-dev-parallel"
    ntrex = Path(cfg.ntrex) if cfg.ntrex else root / "ntrex128" / "ntrex128.jsonl"
    encoder = OnnxEncoder(resolve_served_model(cfg.base), threads=cfg.threads or None)
    texts = [squad_texts(squad), ntrex_texts(ntrex, cfg.ntrex_ids)]
    if cfg.tatoeba_weight > 0:
        default = root / "tatoeba" / "tatoeba_multiway_by_en.jsonl"
        texts.append(tatoeba_texts(Path(cfg.tatoeba) if cfg.tatoeba else default))
    return [encode_set(encoder, t, Path(cfg.output), cfg.progress) for t in texts]


def run(cfg: ProjectionConfig, commit: str = "unknown") -> dict:
    """Train one head per seed; write them, the summary, and the best seed's head."""
    out = Path(cfg.output)
    sets = load_sets(cfg)
    pairs = [s.split(cfg.val_fraction) for s in sets]
    train, val = [p[0] for p in pairs], [p[1] for p in pairs]
    base = validate(Projection.identity(sets[0].queries.shape[1]), val)
    seeds = {}
    for seed in cfg.seed_list:
        started = time.perf_counter()
        head, history = train_head(train, val, cfg, seed)
        best = max(history, key=lambda h: h["score"])
        head.meta = {
            "base": cfg.base,
            "method": "linear head on the frozen encoder's vectors, hybrid-batch InfoNCE",
            "data": {s.name: {"rows": len(t.pids)} for s, t in zip(sets, train, strict=True)},
            "config": asdict(cfg),
            "seed": seed,
            "best_step": best["step"],
            "validation": {k: v for k, v in best.items() if k not in ("step", "loss")},
            "validation_base": base,
            "training_commit": commit,
            "seconds": round(time.perf_counter() - started, 1),
        }
        head.save(out / f"seed{seed}.npz")
        seeds[seed] = {"best": best, "history": history, "seconds": head.meta["seconds"]}
    chosen = max(seeds, key=lambda s: seeds[s]["best"]["score"])
    (out / "projection.npz").write_bytes((out / f"seed{chosen}.npz").read_bytes())
    summary = {"config": asdict(cfg), "validation_base": base, "chosen_seed": chosen,
               "seeds": seeds}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(
        ProjectionConfig,
        prog="python -m trainer.projection",
        description="Fit a linear alignment head on the frozen encoder with hybrid batches.",
    )
    cfg = ProjectionConfig(**vars(parser.parse_args(argv)))
    from trainer.experiment_report import commit

    summary = run(cfg, commit())
    base = summary["validation_base"]
    for seed, s in summary["seeds"].items():
        print(f"seed {seed}: best step {s['best']['step']}, validation {s['best']}")
    print(f"base (identity): {base}")
    print(f"wrote {cfg.output}/projection.npz (seed {summary['chosen_seed']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
