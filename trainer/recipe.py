"""`python -m trainer.recipe`: train the encoder on one GPU from a pack, rank on validation.

The ten-minute GPU recipe (issue 28), run by `scripts/train-gpu.sh PACK OUT` on a machine with
torch and no network. From a pack (`python -m trainer.pack`) it rebuilds the base model and
the data, trains several configurations at once on the one GPU (one `python -m trainer`
process each: e5-small leaves most of an H100 idle, so they share it), every one from the
default with hybrid batches, frozen word embeddings (the result ships as a small delta), bf16,
batch 128 and early stopping on the trainer's validation loss. Then it ranks them on the
pack's held-out validation split (never XQuAD-R: that is evaluation data) by Mono/Cross/Multi
mAP of question -> answer sentence, as `xlir eval` scores XQuAD-R, and writes to OUTPUT:

    validation.md, validation.json   the table (the untouched base first) and every run's
                                     training summary
    delta/                           the best run as `python -m export.delta` writes it, its
                                     delta.safetensors cut into parts under 16 MB
                                     (`cat delta.safetensors.* > delta.safetensors`)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from trainer.config import TrainConfig, build_parser, option
from trainer.data import load_examples
from trainer.models import Encoder
from trainer.pack import MANIFEST, NTREX, SQUAD, unpack
from trainer.projection import validate
from trainer.projection_data import VectorSet
from xlir_plugin.projection import Projection

PART_BYTES = 15 * 2**20  # the device tool brings back files under 16 MiB
DELTA = "delta.safetensors"
# name -> the trainer flags that make it; distillation at a low weight (the default is 10)
SENTENCE = ["--passage-unit", "sentence"]
DISTILL = ["--distill-data", "{data}/" + NTREX, "--distill-weight", "1"]
CONFIGS = {
    "paragraph": [],
    "sentence": SENTENCE,
    "paragraph-distill": DISTILL,
    "sentence-distill": SENTENCE + DISTILL,
}


@dataclass
class RecipeConfig:
    pack: str = option("pack", "the pack directory (python -m trainer.pack)")
    output: str = option("runs/gpu-recipe", "where the table and the delta go ($OUT remotely)")
    work: str = option("/tmp/xlir-recipe", "scratch: the base model, data and every run")
    configs: str = option(",".join(CONFIGS), "comma-separated configurations, run at once")
    batch_size: int = option(128, "pairs per batch")
    max_steps: int = option(1500, "optimizer steps at most (early stopping ends most sooner)")
    lr: float = option(5e-5, "peak learning rate")
    eval_steps: int = option(100, "validation loss every N steps")
    eval_batches: int = option(8, "validation batches per evaluation")
    patience: int = option(3, "stop after N evaluations without improvement")
    max_query_length: int = option(64, "max query tokens")
    max_passage_length: int = option(256, "max passage tokens")
    budget_s: int = option(360, "training wall-clock budget: runs still going are stopped")
    threads: int = option(2, "CPU threads per run")
    device: str = option("auto", "auto (cuda if available), cpu, cuda")
    seed: int = option(42, "seed")


def train_command(cfg: RecipeConfig, name: str, base: Path, data: Path, out: Path) -> list[str]:
    extra = [a.replace("{data}", str(data)) for a in CONFIGS[name]]
    return [
        sys.executable, "-m", "trainer", "--base", str(base), "--data", str(data / SQUAD / "train"),
        "--output", str(out), "--batching", "hybrid", "--freeze-embeddings",
        "--batch-size", str(cfg.batch_size), "--max-steps", str(cfg.max_steps), "--lr", str(cfg.lr),
        "--eval-steps", str(cfg.eval_steps), "--eval-batches", str(cfg.eval_batches),
        "--patience", str(cfg.patience), "--save-steps", "0",
        "--max-query-length", str(cfg.max_query_length),
        "--max-passage-length", str(cfg.max_passage_length), "--seed", str(cfg.seed),
        "--num-threads", str(cfg.threads), "--device", cfg.device, "--no-progress", *extra,
    ]  # fmt: skip


def train_all(cfg: RecipeConfig, names: list[str], base: Path, data: Path) -> dict[str, Path]:
    """Every configuration as its own process on the one device; those still running when the
    budget ends are stopped (their best model so far stays). name -> output directory."""
    runs = Path(cfg.work) / "runs"
    procs = {}
    for name in names:
        out = runs / name
        out.mkdir(parents=True, exist_ok=True)
        log = (out / "recipe.log").open("w")
        # a datasets cache each: runs of one passage unit would otherwise build it at once
        env = {**os.environ, "HF_DATASETS_CACHE": str(out / "datasets-cache")}
        procs[name] = subprocess.Popen(train_command(cfg, name, base, data, out), stdout=log,
                                       stderr=subprocess.STDOUT, env=env)  # fmt: skip
    deadline = time.monotonic() + cfg.budget_s
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait()
        if proc.returncode not in (0, -15):
            tail = (runs / name / "recipe.log").read_text()[-2000:]
            print(f"[recipe] {name} failed ({proc.returncode}):\n{tail}", file=sys.stderr)
    return {n: runs / n for n in names if (runs / n / "model.safetensors").is_file()}


@torch.no_grad()
def embed(encoder: Encoder, tokenizer, texts: list[str], max_length: int, device) -> np.ndarray:
    out = []
    for i in range(0, len(texts), 256):
        enc = tokenizer(texts[i : i + 256], truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt").to(device)  # fmt: skip
        out.append(encoder(**enc).cpu().numpy())
    return np.concatenate(out)


def score(model: Path, val: Path, cfg: RecipeConfig, device) -> dict:
    """Mono/Cross/Multi mAP and rank distance on the validation split: each question against
    every answer sentence of every language (the sentence alone, as XQuAD-R candidates)."""
    from transformers import AutoTokenizer

    tc = TrainConfig()
    table = load_examples(val, unit="sentence")
    ds = table.ds
    tokenizer = AutoTokenizer.from_pretrained(model)
    encoder = Encoder.from_pretrained(str(model)).eval().to(device)
    queries = embed(encoder, tokenizer, [tc.q_prefix + q for q in ds["question"]],
                    cfg.max_query_length, device)  # fmt: skip
    passages = embed(encoder, tokenizer, [tc.p_prefix + p for p in ds["passage"]],
                     cfg.max_passage_length, device)  # fmt: skip
    keys = np.array([f"{la}:{p}" for la, p in zip(ds["lang"], ds["passage"], strict=True)])
    vectors = VectorSet("validation", table.pids, table.langs, table.groups, queries, passages,
                        keys)  # fmt: skip
    return validate(Projection.identity(queries.shape[1]), [vectors])


def table(rows: dict[str, dict], best: str) -> str:
    lines = ["| run | Mono | Cross | Multi | rank distance | score | best step | steps |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, r in rows.items():
        v = r["validation"]
        mark = " (best)" if name == best else ""
        lines.append(f"| {name}{mark} | {v['mono']:.4f} | {v['cross']:.4f} | {v['multi']:.4f} | "
                     f"{v['rank_distance']:.1f} | {r['score']:.4f} | {r.get('best_step', '-')} | "
                     f"{r.get('steps', '-')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def ship_delta(best: Path, base: Path, manifest: dict, work: Path, out: Path) -> list[str]:
    """`python -m export.delta` of the best run, its weights cut into parts under 16 MiB.

    The delta is made over the packed base, whose layers are the default's (only unused word
    rows differ, and those are not in it), so it applies to the default: its provenance says
    so, with the pack's sha256."""
    delta = work / "delta"
    subprocess.run([sys.executable, "-m", "export.delta", "--model", str(best), "--output",
                    str(delta), "--base", str(base), "--commit", manifest.get("commit", "unknown")],
                   check=True)  # fmt: skip
    meta = json.loads((delta / "delta.json").read_text())
    meta["provenance"].update(base="default", packed_base_sha256=manifest["packed_sha256"])
    (delta / "delta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(delta.iterdir()):
        if path.name != DELTA:
            (out / path.name).write_bytes(path.read_bytes())
            written.append(path.name)
    data = (delta / DELTA).read_bytes()
    for i in range(0, len(data), PART_BYTES):
        name = f"{DELTA}.{i // PART_BYTES:02d}"
        (out / name).write_bytes(data[i : i + PART_BYTES])
        written.append(name)
    return written


def run(cfg: RecipeConfig) -> dict:
    started = time.monotonic()
    pack, work, out = Path(cfg.pack), Path(cfg.work), Path(cfg.output)
    names = [n for n in cfg.configs.split(",") if n]
    unknown = sorted(set(names) - set(CONFIGS))
    if unknown:
        raise ValueError(f"unknown configurations {unknown} (known: {sorted(CONFIGS)})")
    manifest = json.loads((pack / MANIFEST).read_text())
    base, data = unpack(pack, work)
    setup_s = time.monotonic() - started
    models = train_all(cfg, names, base, data)
    if not models:
        raise RuntimeError("no configuration produced a model (see the runs' recipe.log)")
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available()
                          else "cpu" if cfg.device == "auto" else cfg.device)  # fmt: skip
    rows = {"base": score(base, data / SQUAD / "val", cfg, device)}
    for name, model in models.items():
        summary_file = model / "train_summary.json"
        summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
        rows[name] = {**score(model, data / SQUAD / "val", cfg, device), **summary}
    best = max(models, key=lambda n: rows[n]["score"])
    files = ship_delta(models[best], base, manifest, work, out / "delta")
    result = {"best": best, "setup_s": round(setup_s, 1), "config": asdict(cfg),
              "runs": rows, "delta_files": files,
              "seconds": round(time.monotonic() - started, 1)}  # fmt: skip
    (out / "validation.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "validation.md").write_text(table(rows, best))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(RecipeConfig, prog="python -m trainer.recipe",
                          description=__doc__.split("\n")[0])  # fmt: skip
    cfg = RecipeConfig(**vars(parser.parse_args(argv)))
    try:
        result = run(cfg)
    except (ValueError, RuntimeError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        print(f"python -m trainer.recipe: error: {exc}", file=sys.stderr)
        return 2
    print((Path(cfg.output) / "validation.md").read_text(), end="")
    print(json.dumps({k: result[k] for k in ("best", "setup_s", "seconds", "delta_files")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
