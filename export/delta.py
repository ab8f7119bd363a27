"""`python -m export.delta`: a trained model -> the compact delta the repository ships.

    python -m export.delta --model runs/distill --output xlir_plugin/shipped/xlir-e5-small \
        [--base default] [--eval int8=results/.../results.json --eval fp32=...]
    python -m export.delta --projection runs/projection/projection.npz \
        --output xlir_plugin/default_projection.npz --eval int8=... --eval fp32=...

The delta (see `xlir_plugin.model_delta`) holds the int8 difference of every tensor training
moved, plus the model's provenance: base, training config (data, steps, seed), the commit of
the training code, and, with `--eval NAME=FILE`, the exact-backend figures of `xlir eval`
results files (e.g. one for the int8 export and one for fp32). A delta
over ~25 MB is refused: the word embeddings must stay frozen (`--freeze-embeddings`).

Exit codes: 0 written, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from xlir_plugin.default_model import resolve_hf_model
from xlir_plugin.errors import XlirError
from xlir_plugin.manifest import EncoderSettings
from xlir_plugin.model_delta import make_delta

MAX_BYTES = 25 * 2**20
EVAL_KEYS = ("mono", "cross", "multi", "r1_mono", "r1_cross", "r10_multi", "rank_distance")


def git_commit(repo: Path) -> str:
    """HEAD of the repository the trainer ran from, '+dirty' when it had local changes."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--", "trainer"],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def provenance(model: Path, base: str, evals: dict[str, Path], commit: str) -> dict:
    """What made this model, from the trainer's own files (and an eval results file)."""
    config = json.loads((model / "train_config.json").read_text())
    summary_file = model / "train_summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    out = {
        "base": base,
        "training_commit": summary.get("commit") or commit,
        "train_config": {k: v for k, v in config.items() if k not in ("output", "resume")},
        "best_step": summary.get("best_step"),
        "steps": summary.get("steps"),
        "stop_reason": summary.get("stop_reason"),
        "seconds_per_step": summary.get("seconds_per_step"),
        "device": summary.get("device"),
    }
    out["eval"] = {name: exact_figures(path) for name, path in evals.items()}
    return out


def exact_figures(path: Path) -> dict:
    """The exact backend's mean figures of an `xlir eval` results.json."""
    exact = json.loads(path.read_text())["backends"]["exact"]["mean"]
    return {k: exact.get(k) for k in EVAL_KEYS}


def ship_projection(head: Path, output: Path, evals: dict[str, Path]) -> dict:
    """A trained projection head (`python -m trainer.projection`) with its XQuAD-R figures
    (`xlir eval` results of the exports that carry it) as the file the repository ships."""
    from xlir_plugin.projection import load_projection

    projection = load_projection(head)
    projection.meta["eval"] = {name: exact_figures(path) for name, path in evals.items()}
    projection.save(output)
    return {"sha256": projection.sha256, "bytes": output.stat().st_size, **projection.meta["eval"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.delta", description=__doc__.split("\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="the trained transformers directory")
    what.add_argument("--projection", help="a projection head .npz (python -m trainer.projection)")
    p.add_argument("--output", required=True, help="directory to write the delta into (a "
                   ".npz file for --projection)")  # fmt: skip
    p.add_argument("--base", default="default", help="the base it was trained from (--model "
                   "only: a head records its own base)")  # fmt: skip
    p.add_argument("--eval", action="append", default=[], metavar="NAME=FILE",
                   help="record an `xlir eval` results.json (exact backend) under NAME")  # fmt: skip
    p.add_argument("--commit", default=None, help="commit of the training code (default: "
                   "HEAD; --model only: a head records its own)")  # fmt: skip
    args = p.parse_args(argv)
    try:
        evals = {}
        for item in args.eval:
            name, sep, path = item.partition("=")
            if not sep:
                raise XlirError(f"--eval {item}: expected NAME=FILE")
            evals[name] = Path(path)
        if args.projection:
            print(json.dumps(ship_projection(Path(args.projection), Path(args.output), evals)))
            return 0
        model = Path(args.model)
        if not (model / "train_config.json").is_file():
            raise XlirError(f"{model}: no train_config.json (not a `python -m trainer` output)")
        commit = args.commit or git_commit(Path(__file__).resolve().parents[1])
        prov = provenance(model, args.base, evals, commit)
        base = resolve_hf_model(args.base)
        stats = make_delta(base, model, args.output, prov)
        # training truncates to its own short lengths; serving keeps the base model's limit
        settings = EncoderSettings.load(model)
        settings.max_length = EncoderSettings.load(base).max_length
        settings.save(args.output)
    except (XlirError, OSError, ValueError) as exc:
        print(f"python -m export.delta: error: {exc}", file=sys.stderr)
        return 2
    if stats["bytes"] > MAX_BYTES:
        print(f"python -m export.delta: error: the delta is {stats['bytes'] / 2**20:.1f} MB "
              f"(limit {MAX_BYTES / 2**20:.0f} MB): train with --freeze-embeddings",
              file=sys.stderr)  # fmt: skip
        return 2
    print(json.dumps({k: stats[k] for k in ("changed_tensors", "bytes", "max_relative_error")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
