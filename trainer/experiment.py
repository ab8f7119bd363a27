"""`python -m trainer.experiment`: the paper's experiment with XLIR's own tools, end to end.

For each arm (the base model untouched, then X-X, X-Y and hybrid batching with the same seed,
steps, batch size and learning rate) it trains with `python -m trainer`, exports int8 ONNX with
`python -m export.onnx`, evaluates on XQuAD-R with `xlir eval` (exact numpy over every query,
then Elasticsearch kNN on the first `--es-max-queries` questions per language) and writes a
Markdown report, with its plot beside it, from the results files. Each stage is its own CLI
call, so a failed step can be rerun by hand; finished stages are skipped on a rerun (`--force`
redoes them), so a rerun with a new `--report` only rewrites the report.

    python -m trainer.experiment --report results/hybrid-batching.md   # the committed run
    python -m trainer.experiment --steps 2000 --seeds 1,2,3 --no-freeze-embeddings  # bigger
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from trainer.experiment_config import ARMS, SETTINGS, TIMINGS, ExperimentConfig, run_dir
from trainer.experiment_report import write_report


def train_command(cfg: ExperimentConfig, arm: str, seed: int, out: Path) -> list[str]:
    """Fixed step budget, no early stopping: every arm sees the same number of batches."""
    return [
        sys.executable, "-m", "trainer", "--base", cfg.base, "--data", cfg.train_data,
        "--passage-unit", cfg.passage_unit, "--batching", arm, "--alpha", str(cfg.alpha),
        "--batch-size", str(cfg.batch_size), "--max-steps", str(cfg.steps), "--lr", str(cfg.lr),
        "--max-query-length", str(cfg.max_query_length),
        "--max-passage-length", str(cfg.max_passage_length),
        "--freeze-embeddings" if cfg.freeze_embeddings else "--no-freeze-embeddings",
        "--seed", str(seed), "--num-threads", str(cfg.threads),
        "--eval-steps", "0", "--patience", "0", "--save-steps", "0", "--output", str(out),
    ]  # fmt: skip


def export_command(cfg: ExperimentConfig, model: str, out: Path) -> list[str]:
    """Every arm is served with the base model's max length, so only the weights differ."""
    return [
        sys.executable, "-m", "export.onnx", "--model", model, "--output", str(out),
        "--quantize", "int8", "--max-length", str(cfg.serve_max_length),
    ]  # fmt: skip


def eval_command(cfg: ExperimentConfig, onnx: Path, out: Path, backend: str) -> list[str]:
    cmd = [
        sys.executable, "-m", "xlir_plugin.cli", "eval", "--model", str(onnx),
        "--data", cfg.eval_data, "--output", str(out), "--threads", str(cfg.threads),
        "--vectors-cache", str(out.parent / "vectors.npz"),  # both runs share the candidates
    ]  # fmt: skip
    if backend == "exact":
        cmd += ["--backend", "exact"]
        limit = cfg.eval_max_queries
    else:  # both on a query subset: Elasticsearch's figures and their gap to exact
        cmd += ["--backend", "both"]
        limit = cfg.es_max_queries
    if cfg.eval_langs:
        cmd += ["--langs", cfg.eval_langs]
    return cmd + (["--max-queries", str(limit)] if limit else [])


def stage(name: str, cmd: list[str], done: Path, timings: dict, cfg: ExperimentConfig) -> None:
    """Run one CLI step unless its output exists; record its wall time in timings.json."""
    if done.exists() and not cfg.force:
        print(f"[experiment] {name}: done before ({done}), skipped", flush=True)
        return
    print(f"[experiment] {name}: {' '.join(cmd)}", flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    timings[name] = round(time.perf_counter() - start, 1)
    path = Path(cfg.output) / TIMINGS
    path.write_text(json.dumps(timings, indent=2, sort_keys=True) + "\n")


def ensure_elasticsearch() -> None:
    """The ES backend needs a node: XLIR_ES_URL's, else the local one (started if needed)."""
    if not os.environ.get("XLIR_ES_URL"):
        subprocess.run([sys.executable, "-m", "xlir_plugin.cli", "es", "start"], check=True)


def check_output(cfg: ExperimentConfig, out: Path) -> None:
    """Finished stages are reused, so a run with other settings must not land in the same dir."""
    path = out / SETTINGS
    if cfg.force or not path.exists():
        return
    before, now = json.loads(path.read_text()), asdict(cfg)
    changed = [k for k in now if k not in ("report", "force", "threads") and
               before.get(k, now[k]) != now[k]]  # fmt: skip
    if changed:
        raise ValueError(
            f"{out} holds a run with other settings ({', '.join(changed)}): choose another "
            "--output, or --force to redo every stage"
        )


def run(cfg: ExperimentConfig) -> Path:
    out = Path(cfg.output)
    check_output(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    (out / SETTINGS).write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    timings_path = out / TIMINGS
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    runs = cfg.runs()
    for arm, seed in runs:
        d = run_dir(cfg, arm, seed)
        model = cfg.base
        if seed is not None:
            cmd = train_command(cfg, arm, seed, d / "model")
            stage(f"{d.name}/train", cmd, d / "model" / "train_summary.json", timings, cfg)
            model = str(d / "model")
        onnx = d / "onnx-int8"
        stage(f"{d.name}/export", export_command(cfg, model, onnx), onnx / "xlir.json", timings,
              cfg)  # fmt: skip
        exact = d / "eval-exact"
        stage(f"{d.name}/eval-exact", eval_command(cfg, onnx, exact, "exact"),
              exact / "results.json", timings, cfg)  # fmt: skip
    es_runs = [run_dir(cfg, arm, seed) for arm, seed in runs] if cfg.es_max_queries >= 0 else []
    if any(cfg.force or not (d / "eval-es" / "results.json").exists() for d in es_runs):
        ensure_elasticsearch()
    for d in es_runs:
        es = d / "eval-es"
        stage(f"{d.name}/eval-es", eval_command(cfg, d / "onnx-int8", es, "es"),
              es / "results.json", timings, cfg)  # fmt: skip
    return write_report(cfg, Path(cfg.report) if cfg.report else out / "RESULTS.md")


def parse_args(argv: list[str] | None = None) -> ExperimentConfig:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.experiment",
        description="X-X vs X-Y vs hybrid batching on XQuAD-R: train, export, evaluate, report.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    helps = {
        "base": "base model: 'default' (multilingual-e5-small) or a transformers directory",
        "eval_langs": "comma-separated XQuAD-R languages to evaluate (default: all 11)",
        "arms": f"comma-separated arms among {','.join(ARMS)}",
        "seeds": "comma-separated training seeds (one run per trained arm and seed)",
        "threads": "CPU threads for training and encoding (0: all cores)",
        "es_max_queries": "questions per language for the Elasticsearch run (0: all; -1: skip)",
        "eval_max_queries": "questions per language for the exact run (0: all)",
        "serve_max_length": "max tokens of the exported models (the base model's 512)",
        "force": "redo stages whose output exists",
    }
    for f in fields(ExperimentConfig):
        flag = "--" + f.name.replace("_", "-")
        text = helps.get(f.name, f.name.replace("_", " "))
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                help=text)  # fmt: skip
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, help=text)
    try:
        return ExperimentConfig(**vars(parser.parse_args(argv)))
    except ValueError as exc:
        parser.error(str(exc))


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        report = run(cfg)
    except ValueError as exc:
        print(f"python -m trainer.experiment: error: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(f"python -m trainer.experiment: a stage failed: {' '.join(exc.cmd)}",
              file=sys.stderr)  # fmt: skip
        return 1
    print(f"[experiment] report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
