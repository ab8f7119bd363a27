"""The training loop: one process, or one per device under `torchrun` (DDP).

Each process draws its own batches from one global seeded stream (see `trainer.samplers`),
computes InfoNCE over its in-batch negatives, and DDP averages the gradients. Rank 0 writes
the JSONL log, the checkpoints and the output directory:

    OUTPUT/                      model + tokenizer (transformers), xlir_encoder.json,
                                 train_config.json, train_log.jsonl, train_summary.json
    OUTPUT/checkpoints/step-N/   model + tokenizer, optimizer.pt, scheduler.pt, scaler.pt,
                                 trainer_state.json, rng-RANK.pt

With evaluation on, OUTPUT holds the weights of the best validation loss; otherwise the last.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from trainer.config import TrainConfig
from trainer.data import ExampleTable, load_examples
from trainer.models import ContrastiveModel, Encoder, resolve_base
from trainer.samplers import Batch, HybridBatchSampler
from xlir_plugin.manifest import EncoderSettings

LOG_FILE = "train_log.jsonl"
SUMMARY_FILE = "train_summary.json"
STATE_FILE = "trainer_state.json"


# --- processes and devices ----------------------------------------------------------------


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


# --- batches -> tensors -------------------------------------------------------------------


def collate(tokenizer, table: ExampleTable, batch: Batch, cfg: TrainConfig, device) -> tuple:
    """Tokenised (queries, passages) of a batch. Sentence passages carry their paragraph as
    the second segment of a text pair (LAReQA style)."""
    q_rows = table.rows(batch.query_rows)
    p_rows = q_rows if batch.kind == "xx" else table.rows(batch.passage_rows)
    kw = {"truncation": True, "padding": True, "return_tensors": "pt"}
    q = tokenizer(
        [cfg.q_prefix + x for x in q_rows["question"]], max_length=cfg.max_query_length, **kw
    )
    passages = [cfg.p_prefix + x for x in p_rows["passage"]]
    if any(p_rows["context"]):
        p = tokenizer(passages, p_rows["context"], max_length=cfg.max_passage_length, **kw)
    else:
        p = tokenizer(passages, max_length=cfg.max_passage_length, **kw)

    def move(enc):
        return {k: v.to(device) for k, v in enc.items()}

    return move(q), move(p)


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


def save_model(directory: Path, encoder: Encoder, tokenizer, cfg: TrainConfig) -> None:
    """A `transformers` directory plus the pooling/prefix settings and the training config."""
    directory.mkdir(parents=True, exist_ok=True)
    encoder.model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    EncoderSettings(
        pooling=encoder.pooling,
        normalize=encoder.normalize,
        query_prefix=cfg.q_prefix,
        passage_prefix=cfg.p_prefix,
        max_length=cfg.max_passage_length,
    ).save(directory)
    cfg.save(directory)


# --- checkpoints --------------------------------------------------------------------------


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


# --- evaluation ---------------------------------------------------------------------------


@torch.no_grad()
def evaluate(model, tokenizer, table, sampler, cfg, d: Dist, autocast) -> dict:
    """Mean validation loss over the fixed validation batches (all ranks together)."""
    model.eval()
    sums = {"xx": 0.0, "xy": 0.0}
    counts = {"xx": 0.0, "xy": 0.0}
    for batch in sampler:
        if len(batch) < 2:
            continue
        q, p = collate(tokenizer, table, batch, cfg, d.device)
        with autocast():
            loss = model(q, p)
        sums[batch.kind] += loss.item()
        counts[batch.kind] += 1
    model.train()
    s = d.sum([sums["xx"], sums["xy"], counts["xx"], counts["xy"]])
    n = s[2] + s[3]
    out = {"val_loss": (s[0] + s[1]) / n if n else float("nan")}
    for i, kind in enumerate(("xx", "xy")):
        if s[2 + i]:
            out[f"val_loss_{kind}"] = s[i] / s[2 + i]
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

    # model
    resume_from = find_resume(cfg)
    base = resolve_base(cfg.base)
    pooling = cfg.pooling if cfg.pooling != "auto" else EncoderSettings.load(base).pooling
    source = str(resume_from) if resume_from else base
    tokenizer = AutoTokenizer.from_pretrained(source)
    encoder = build_encoder(source, cfg, pooling).to(d.device)
    model = ContrastiveModel(encoder, cfg.temperature, cfg.symmetric)
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
    val_sampler = None
    if cfg.eval_steps > 0 and len(val_table) >= 2:
        val_sampler = _val_sampler(val_table, cfg, d)

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

    step, stopped_early, train_time, last_saved = start, False, 0.0, None
    model.train()
    for batch in sampler:
        t0 = time.perf_counter()
        q, p = collate(tokenizer, train_table, batch, cfg, d.device)
        with autocast():
            loss = train_model(q, p)
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
        if grad_norm is not None and math.isfinite(grad_norm):
            row["grad_norm"] = round(grad_norm, 4)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{loss_value:.4f}", type=batch.kind)

        if val_sampler is not None and (step % cfg.eval_steps == 0 or step == cfg.max_steps):
            ev = evaluate(model, tokenizer, val_table, val_sampler, cfg, d, autocast)
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
    if d.world_size > 1:
        summary.update(_compare_ranks(model, d))
        # debug output for the DDP test: every rank's checksum of its final weights
        checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
        (output / f"rank{d.rank}_checksum.txt").write_text(f"{checksum!r}\n")
    if d.main:
        (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    d.barrier()
    if d.world_size > 1:
        dist.destroy_process_group()
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


def _compare_ranks(model: torch.nn.Module, d: Dist) -> dict:
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
