"""The training loop: one process, or one per device under `torchrun` (DDP).

Each process draws its own batches from one global seeded stream (see `trainer.samplers`),
computes InfoNCE over its in-batch negatives (plus, with `--distill-data`, the distillation
of parallel sentences toward the frozen base model: `trainer.parallel`), and DDP averages the
gradients. Rank 0 writes the JSONL log, the checkpoints (`trainer.checkpoints`) and the output
directory; with evaluation on, OUTPUT holds the weights of the best validation loss, otherwise
the last.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from trainer.batches import collate, collate_pairs
from trainer.checkpoints import STATE_FILE, find_resume, save_checkpoint, save_model
from trainer.config import TrainConfig
from trainer.data import ExampleTable, load_examples
from trainer.distributed import Dist, compare_ranks, precision_dtype, setup
from trainer.models import ContrastiveModel, Encoder, resolve_base
from trainer.parallel import (
    QA_SOURCE,
    PairSampler,
    ParallelPairs,
    load_pairs_file,
    parse_sources,
    question_pairs,
)
from trainer.samplers import HybridBatchSampler
from xlir_plugin.manifest import EncoderSettings

LOG_FILE = "train_log.jsonl"
SUMMARY_FILE = "train_summary.json"


# --- model --------------------------------------------------------------------------------


def build_encoder(path: str, cfg: TrainConfig, pooling: str) -> Encoder:
    enc = Encoder.from_pretrained(path, pooling=pooling, normalize=cfg.normalize)
    pooler = getattr(enc.model, "pooler", None)
    if isinstance(pooler, torch.nn.Module):
        pooler.requires_grad_(False)  # unused by mean/CLS pooling (and DDP wants no idle params)
    if cfg.freeze_embeddings:
        enc.model.get_input_embeddings().weight.requires_grad_(False)
    if cfg.gradient_checkpointing:
        enc.model.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    return enc


def build_teacher(base: str, cfg: TrainConfig, pooling: str, device) -> Encoder:
    """The frozen base model (also on resume: the teacher never moves)."""
    teacher = Encoder.from_pretrained(base, pooling=pooling, normalize=cfg.normalize)
    return teacher.eval().requires_grad_(False).to(device)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norm weights (1-d parameters)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr)


# --- distillation data --------------------------------------------------------------------


def load_distill_data(
    cfg: TrainConfig, table: ExampleTable
) -> tuple[list[ParallelPairs], list[ParallelPairs], list[float]]:
    """(train sources, validation sources, weights) from `--distill-data`; the ``qa`` source
    takes its questions from `table`, which is already the training split."""
    train_sets, val_sets, weights = [], [], []
    for path, weight in parse_sources(cfg.distill_data):
        if path == QA_SOURCE:
            pairs = question_pairs(table.pids, table.langs, table.ds["question"])
        else:
            pairs = load_pairs_file(path)
        train, val = pairs.split(cfg.val_fraction, seed=cfg.seed)
        train_sets.append(train)
        val_sets.append(val)
        weights.append(weight)
    return train_sets, val_sets, weights


# --- evaluation ---------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model, tokenizer, table, sampler, cfg, d: Dist, autocast, distill=None) -> dict:
    """Mean validation losses over fixed validation batches (all ranks together).

    `distill` = (teacher, list of fixed pair batches). ``val_loss`` is the training objective:
    the QA loss plus the weighted distillation loss."""
    model.eval()
    sums = {"xx": 0.0, "xy": 0.0}
    counts = {"xx": 0.0, "xy": 0.0}
    for batch in sampler:
        if len(batch) < 2:
            continue
        q, p = collate(tokenizer, table, batch, cfg, d.device)
        with autocast():
            loss = model(q, p)["qa"]
        sums[batch.kind] += loss.item()
        counts[batch.kind] += 1
    distill_sum = distill_n = 0.0
    if distill is not None:
        teacher, batches = distill
        for pairs in batches:
            student_in, teacher_in = collate_pairs(tokenizer, pairs, cfg, d.device)
            with autocast():
                other, en = model.encoder(**student_in).chunk(2)
                distill_sum += float(model.distill_loss(other, en, teacher(**teacher_in)))
            distill_n += 1
    model.train()
    s = d.sum([sums["xx"], sums["xy"], counts["xx"], counts["xy"], distill_sum, distill_n])
    n = s[2] + s[3]
    out = {"val_loss": (s[0] + s[1]) / n if n else float("nan")}
    for i, kind in enumerate(("xx", "xy")):
        if s[2 + i]:
            out[f"val_loss_{kind}"] = s[i] / s[2 + i]
    if s[5]:
        out["val_distill"] = s[4] / s[5]
        out["val_loss"] += cfg.distill_weight * out["val_distill"]
    return out


# --- the loop -----------------------------------------------------------------------------


def _log(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _trim_log(path: Path, step: int) -> None:
    """On resume: drop log rows written after the checkpoint's step."""
    if path.is_file():
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows if r.get("step", 0) <= step))


def train(cfg: TrainConfig) -> dict:
    """Run a training; returns the summary (also written to OUTPUT/train_summary.json)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    d = setup(cfg)
    output = Path(cfg.output)
    torch.manual_seed(cfg.seed + d.rank)

    # data: rank 0 first (it fills the datasets cache), the others read the cache
    if not d.main:
        d.barrier()
    table = load_examples(cfg.data, cfg.data_format, cfg.passage_unit, cfg.langs or None)
    if d.main:
        d.barrier()
    train_table, val_table = table.split(cfg.val_fraction, seed=cfg.seed)
    distill_train, distill_val, distill_weights = load_distill_data(cfg, train_table)

    # model
    resume_from = find_resume(cfg)
    base = resolve_base(cfg.base)
    pooling = cfg.pooling if cfg.pooling != "auto" else EncoderSettings.load(base).pooling
    source = str(resume_from) if resume_from else base
    tokenizer = AutoTokenizer.from_pretrained(source)
    encoder = build_encoder(source, cfg, pooling).to(d.device)
    model = ContrastiveModel(encoder, cfg.temperature, cfg.symmetric, cfg.distill_weight)
    teacher = build_teacher(base, cfg, pooling, d.device) if distill_train else None
    train_model = model
    if d.world_size > 1:
        ids = [d.device.index] if d.device.type == "cuda" else None
        train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    dtype = precision_dtype(cfg, d.device)

    def autocast():
        if dtype is None:
            return nullcontext()
        return torch.autocast(device_type=d.device.type, dtype=dtype)

    optimizer = make_optimizer(model, cfg)
    scheduler = get_linear_schedule_with_warmup(optimizer, cfg.num_warmup(), cfg.max_steps)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    state = {"step": 0, "best_val": None, "bad_evals": 0, "best_step": None}
    log_path = output / LOG_FILE
    if resume_from:
        optimizer.load_state_dict(torch.load(resume_from / "optimizer.pt", weights_only=True))
        scheduler.load_state_dict(torch.load(resume_from / "scheduler.pt", weights_only=True))
        if scaler is not None and (resume_from / "scaler.pt").is_file():
            scaler.load_state_dict(torch.load(resume_from / "scaler.pt", weights_only=True))
        state.update(json.loads((resume_from / STATE_FILE).read_text()))
        rng_file = resume_from / f"rng-{d.rank}.pt"
        if rng_file.is_file():
            rng = torch.load(rng_file, weights_only=False)
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
    if d.main:
        output.mkdir(parents=True, exist_ok=True)
        cfg.save(output)
        if resume_from:
            _trim_log(log_path, state["step"])
        elif log_path.exists():
            log_path.unlink()
    d.barrier()

    start = state["step"]
    sampler = HybridBatchSampler(
        train_table.pids, train_table.langs, train_table.groups,
        batch_size=cfg.batch_size, batching=cfg.batching, alpha=cfg.alpha,
        lang_sampling=cfg.lang_sampling, seed=cfg.seed, rank=d.rank,
        world_size=d.world_size, start=start, num_batches=cfg.max_steps,
    )  # fmt: skip
    pair_batches = None
    if distill_train:
        pair_batches = iter(PairSampler(
            distill_train, distill_weights, batch_size=cfg.distill_batch_size,
            query_share=cfg.distill_query_share, seed=cfg.seed, rank=d.rank,
            world_size=d.world_size, start=start,
        ))  # fmt: skip
    val_sampler, val_distill = None, None
    if cfg.eval_steps > 0 and len(val_table) >= 2:
        val_sampler = _val_sampler(val_table, cfg, d)
        if distill_train and all(len(v) for v in distill_val):
            val_distill = (teacher, _val_pair_batches(distill_val, distill_weights, cfg, d))

    parts = {"encoder": encoder, "tokenizer": tokenizer, "optimizer": optimizer,
             "scheduler": scheduler, "scaler": scaler}  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    progress = None
    if d.main and cfg.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=cfg.max_steps, initial=start, desc="train", dynamic_ncols=True)
    if d.main:
        print(f"[trainer] {table.stats()} train rows {len(train_table)}, "
              f"val rows {len(val_table)}; world {d.world_size}; device {d.device}", flush=True)  # fmt: skip
        for (path, _), pairs in zip(parse_sources(cfg.distill_data), distill_train, strict=True):
            print(f"[trainer] distill {path}: {len(pairs)} pairs {pairs.languages()}", flush=True)

    step, stopped_early, train_time, last_saved = start, False, 0.0, None
    model.train()
    for batch in sampler:
        t0 = time.perf_counter()
        q, p = collate(tokenizer, train_table, batch, cfg, d.device)
        extra = {}
        if pair_batches is not None:
            student_in, teacher_in = collate_pairs(tokenizer, next(pair_batches), cfg, d.device)
            with torch.no_grad(), autocast():
                extra = {"pairs": student_in, "teacher": teacher(**teacher_in)}
        with autocast():
            losses = train_model(q, p, **extra)
        loss = losses["loss"]
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        grad_norm = None
        if cfg.max_grad_norm > 0:
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm))
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss_value = d.mean(loss.item())
        seconds = time.perf_counter() - t0
        train_time += seconds

        row = {"step": step, "loss": round(loss_value, 6), "lr": lr, "batch_type": batch.kind,
               "batch_size": len(batch), "seconds": round(seconds, 4)}  # fmt: skip
        if "distill" in losses:
            row["qa_loss"] = round(d.mean(losses["qa"].item()), 6)
            row["distill_loss"] = round(d.mean(losses["distill"].item()), 6)
        if grad_norm is not None and math.isfinite(grad_norm):
            row["grad_norm"] = round(grad_norm, 4)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss_value:.4f}", type=batch.kind)

        if val_sampler is not None and (step % cfg.eval_steps == 0 or step == cfg.max_steps):
            ev = evaluate(model, tokenizer, val_table, val_sampler, cfg, d, autocast, val_distill)
            improved = state["best_val"] is None or ev["val_loss"] < state["best_val"]
            if improved:
                state.update(best_val=ev["val_loss"], best_step=step, bad_evals=0)
                if d.main:
                    save_model(output, encoder, tokenizer, cfg)
            else:
                state["bad_evals"] += 1
            row.update(ev, best=improved)
            if d.main and progress is not None:
                progress.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in ev.items()))
            stopped_early = cfg.patience > 0 and state["bad_evals"] >= cfg.patience
        if d.main:
            _log(log_path, row)

        if cfg.save_steps > 0 and step % cfg.save_steps == 0 or stopped_early:
            save_checkpoint(d, output, step, parts, state, cfg)
            last_saved = step
        if stopped_early:
            break

    if progress is not None:
        progress.close()
    if last_saved != step:
        save_checkpoint(d, output, step, parts, state, cfg)
    if d.main and state["best_val"] is None:
        save_model(output, encoder, tokenizer, cfg)

    summary = {
        "steps": step,
        "resumed_from_step": start if resume_from else None,
        "stopped_early": stopped_early,
        "best_val_loss": state["best_val"],
        "best_step": state["best_step"],
        "seconds_per_step": train_time / max(step - start, 1),
        "world_size": d.world_size,
        "device": str(d.device),
        "data": table.stats(),
    }
    if distill_train:
        summary["distill_pairs"] = {
            path: len(p)
            for (path, _), p in zip(parse_sources(cfg.distill_data), distill_train, strict=True)
        }
    if d.world_size > 1:
        summary.update(compare_ranks(model, d))
        # debug output for the DDP test: every rank's checksum of its final weights
        checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
        (output / f"rank{d.rank}_checksum.txt").write_text(f"{checksum!r}\n")
    if d.main:
        (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    d.barrier()
    if d.world_size > 1:
        torch.distributed.destroy_process_group()
    return summary


def _val_sampler(val_table: ExampleTable, cfg: TrainConfig, d: Dist):
    per_rank = max(1, math.ceil(cfg.eval_batches / d.world_size))
    kw = dict(batch_size=cfg.batch_size, alpha=cfg.alpha, lang_sampling=cfg.lang_sampling,
              seed=cfg.seed + 1, rank=d.rank, world_size=d.world_size, num_batches=per_rank)  # fmt: skip
    args = (val_table.pids, val_table.langs, val_table.groups)
    try:
        return HybridBatchSampler(*args, batching=cfg.batching, **kw)
    except ValueError:  # e.g. no validation id in two languages: X-X validation only
        return HybridBatchSampler(*args, batching="xx", **kw)


def _val_pair_batches(sources, weights, cfg: TrainConfig, d: Dist) -> list[ParallelPairs]:
    """This rank's share of the fixed validation pair batches."""
    per_rank = max(1, math.ceil(cfg.eval_batches / d.world_size))
    sampler = PairSampler(sources, weights, batch_size=cfg.distill_batch_size,
                          query_share=cfg.distill_query_share, seed=cfg.seed + 1,
                          rank=d.rank, world_size=d.world_size)  # fmt: skip
    return [sampler.batch(i * d.world_size + d.rank) for i in range(per_rank)]
