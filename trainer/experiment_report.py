"""The Markdown report and its plot for `python -m trainer.experiment`, built only from the
files its stages wrote (results.json of `xlir eval`, train_summary.json, timings.json)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, fields
from pathlib import Path

from trainer.experiment_config import TIMINGS, ExperimentConfig, run_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
SEEN = ("en", "es")  # trained languages that XQuAD-R has (it and da are not in it)
LABELS = {"base": "base (untouched)", "xx": "X-X", "xy": "X-Y", "hybrid": "hybrid"}
METRICS = (
    ("mono", "Mono"),
    ("cross", "Cross"),
    ("multi", "Multi"),
    ("r1_mono", "R@1 mono"),
    ("r1_cross", "R@1 cross"),
    ("r10_multi", "R@10 multi"),
    ("rank_distance", "rank dist"),
)
# PAPER.md, "Numbers to beat": fine-tuned XLM-R and LaBSE, XQuAD-R mAP and rank distance
PAPER = (
    ("XLM-R", "X-X", 0.792, 0.674, 0.548, 410),
    ("XLM-R", "X-Y", 0.755, 0.700, 0.593, 295),
    ("XLM-R", "hybrid", 0.798, 0.705, 0.593, 287),
    ("LaBSE", "X-X", 0.808, 0.752, 0.652, 262),
    ("LaBSE", "X-Y", 0.801, 0.762, 0.679, 225),
    ("LaBSE", "hybrid", 0.817, 0.767, 0.682, 221),
)


def repo_relative(value: object) -> object:
    """An absolute path as seen from the repository root (`../shared/data/xquad-r`): a
    committed report must not carry the path of the machine that made it."""
    if isinstance(value, str) and os.path.isabs(value):
        return os.path.relpath(value, REPO_ROOT)
    return value


def lower_is_better(metric: str) -> bool:
    return metric == "rank_distance"


def load(cfg: ExperimentConfig, kind: str) -> dict[str, list[dict]]:
    """arm -> the results.json of each of its runs (`kind`: eval-exact or eval-es)."""
    found: dict[str, list[dict]] = {}
    for arm, seed in cfg.runs():
        path = run_dir(cfg, arm, seed) / kind / "results.json"
        if path.exists():
            found.setdefault(arm, []).append(json.loads(path.read_text()))
    return found


def fmt(values: list[float], metric: str) -> str:
    """Mean, with the spread over seeds when there is more than one run."""
    if not values:
        return "-"
    digits = 0 if lower_is_better(metric) else 3
    text = f"{statistics.fmean(values):.{digits}f}"
    if len(values) > 1:
        text += f" ± {statistics.stdev(values):.{digits}f}"
    return text


def values(runs: list[dict], metric: str, backend: str = "exact", lang: str | None = None):
    out = []
    for r in runs:
        block = r["backends"][backend]
        v = block["mean"] if lang is None else block["per_lang"][lang]
        if v.get(metric) is not None:
            out.append(v[metric])
    return out


def model_name(cfg: ExperimentConfig) -> str:
    return "e5-small" if cfg.base == "default" else Path(cfg.base).name


def main_table(results: dict[str, list[dict]], name: str) -> list[str]:
    lines = [
        "| model | batching | " + " | ".join(label for _, label in METRICS) + " |",
        "|---" * (len(METRICS) + 2) + "|",
    ]
    for arm, runs in results.items():
        cells = [fmt(values(runs, m), m) for m, _ in METRICS]
        lines.append(f"| {name} int8 (ours) | {LABELS[arm]} | " + " | ".join(cells) + " |")
    for base, batching, mono, cross, multi, rd in PAPER:
        cells = [f"{mono:.3f}", f"{cross:.3f}", f"{multi:.3f}", "-", "-", "-", str(rd)]
        lines.append(f"| {base} (paper) | {batching} | " + " | ".join(cells) + " |")
    return lines


def language_table(results: dict[str, list[dict]], metric: str) -> list[str]:
    """Rows: query languages (seen ones marked), then seen / unseen means; the last column
    names the trained arm that wins the row."""
    arms = list(results)
    trained = [a for a in arms if a != "base"]
    langs = next(iter(results.values()))[0]["languages"]
    header = "| query lang | " + " | ".join(LABELS[a] for a in arms) + " | best trained |"
    lines = [header, "|---" * (len(arms) + 2) + "|"]

    def row(name: str, means: dict[str, float | None]) -> str:
        cells = [fmt([means[a]], metric) if means[a] is not None else "-" for a in arms]
        scored = {a: means[a] for a in trained if means[a] is not None}
        pick = min if lower_is_better(metric) else max
        best = LABELS[pick(scored, key=scored.get)] if scored else "-"
        return f"| {name} | " + " | ".join(cells) + f" | {best} |"

    def mean_over(arm: str, group: list[str]) -> float | None:
        per = [statistics.fmean(values(results[arm], metric, lang=g)) for g in group]
        return statistics.fmean(per) if per else None

    for lang in langs:
        name = f"{lang} (seen)" if lang in SEEN else lang
        lines.append(row(name, {a: mean_over(a, [lang]) for a in arms}))
    for name, group in (
        ("**seen mean** (en, es)", [g for g in langs if g in SEEN]),
        ("**unseen mean**", [g for g in langs if g not in SEEN]),
    ):
        if group:
            lines.append(row(name, {a: mean_over(a, group) for a in arms}))
    return lines


def head_to_head(results: dict[str, list[dict]]) -> list[str]:
    """Per pair of trained arms: the mean difference and in how many query languages the first
    arm is better, which says how consistent a difference is when there is one seed."""
    arms = [a for a in ("hybrid", "xy", "xx") if a in results]
    pairs = [(a, b) for i, a in enumerate(arms) for b in arms[i + 1 :]]
    shown = METRICS[:3] + METRICS[-1:]
    lines = [
        "| comparison | " + " | ".join(label for _, label in shown) + " |",
        "|---" * (len(shown) + 1) + "|",
    ]
    langs = next(iter(results.values()))[0]["languages"]
    for a, b in pairs:
        cells = []
        for metric, _ in shown:
            sign = -1 if lower_is_better(metric) else 1
            diff = [
                statistics.fmean(values(results[a], metric, lang=g))
                - statistics.fmean(values(results[b], metric, lang=g))
                for g in langs
            ]
            delta = statistics.fmean(values(results[a], metric)) - statistics.fmean(
                values(results[b], metric)
            )
            wins = sum(sign * d > 0 for d in diff)
            text = f"{delta:+.0f}" if lower_is_better(metric) else f"{delta:+.3f}"
            cells.append(f"{text} ({wins}/{len(langs)} better)")
        lines.append(f"| {LABELS[a]} vs {LABELS[b]} | " + " | ".join(cells) + " |")
    return lines


def es_table(results: dict[str, list[dict]]) -> list[str]:
    lines = [
        "| batching | queries | ES Mono | ES Cross | ES Multi | exact Mono | exact Cross | "
        "exact Multi | ANN recall@10 (multi) | ES query time (s) |",
        "|---" * 10 + "|",
    ]
    for arm, runs in results.items():
        cells = [str(runs[0]["queries"])]
        cells += [fmt(values(runs, m, "es"), m) for m in ("mono", "cross", "multi")]
        cells += [fmt(values(runs, m, "exact"), m) for m in ("mono", "cross", "multi")]
        cells.append(fmt([r["gap"]["multi_ann_recall_at_10"] for r in runs], "recall"))
        cells.append(f"{statistics.fmean(r['timings']['es_query'] for r in runs):.0f}")
        lines.append(f"| {LABELS[arm]} | " + " | ".join(cells) + " |")
    return lines


def cost_table(cfg: ExperimentConfig, timings: dict) -> list[str]:
    lines = [
        "| run | steps | train (s) | s/step | export (s) | eval exact (s) | eval ES (s) | device |",
        "|---" * 8 + "|",
    ]
    for arm, seed in cfg.runs():
        d = run_dir(cfg, arm, seed)
        summary_path = d / "model" / "train_summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        spp = summary.get("seconds_per_step")
        device = summary.get("device", "-")
        if device == "cpu":
            device = f"CPU, {cfg.threads} threads"
        cells = [
            str(summary.get("steps", "-")),
            str(timings.get(f"{d.name}/train", "-")),
            f"{spp:.2f}" if spp else "-",
            str(timings.get(f"{d.name}/export", "-")),
            str(timings.get(f"{d.name}/eval-exact", "-")),
            str(timings.get(f"{d.name}/eval-es", "-")),
            device,
        ]
        lines.append(f"| {d.name} | " + " | ".join(cells) + " |")
    return lines


def parity_table(cfg: ExperimentConfig) -> list[str]:
    """The int8 export's parity gate per run, from its manifest: a forced export is named."""
    lines = ["| run | cosine min | cosine mean | top-1 agreement | gate |", "|---" * 5 + "|"]
    for arm, seed in cfg.runs():
        d = run_dir(cfg, arm, seed)
        manifest = d / "onnx-int8" / "xlir.json"
        if not manifest.exists():
            continue
        parity = json.loads(manifest.read_text()).get("parity", {})
        gate = "passed" if parity.get("passed") else "FORCED past a failed gate" if parity.get(
            "forced") else "failed"  # fmt: skip
        cells = [f"{parity.get(k, float('nan')):.4f}" for k in ("cosine_min", "cosine_mean",
                                                               "top1_agreement")]  # fmt: skip
        lines.append(f"| {d.name} | " + " | ".join(cells) + f" | {gate} |")
    return lines


def plot(results: dict[str, list[dict]], path: Path) -> Path:
    """Mono/Cross/Multi mAP per arm beside the rank distance (lower is better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), width_ratios=(3, 1.4))
    width = 0.8 / len(arms)
    for i, arm in enumerate(arms):
        heights = [statistics.fmean(values(results[arm], m)) for m in ("mono", "cross", "multi")]
        xs = [j + (i - (len(arms) - 1) / 2) * width for j in range(3)]
        bars = left.bar(xs, heights, width, label=LABELS[arm])
        left.bar_label(bars, fmt="%.3f", fontsize=7, rotation=90, padding=2)
    left.set_xticks(range(3), ["Mono", "Cross", "Multi"])
    left.set_ylabel("mAP (XQuAD-R, exact, int8)")
    left.set_ylim(0, 1)
    left.legend(fontsize=8, loc="upper right")
    rds = [statistics.fmean(values(results[a], "rank_distance")) for a in arms]
    right.bar([LABELS[a] for a in arms], rds, color=[f"C{i}" for i in range(len(arms))])
    right.set_title("language bias: rank distance (lower is better)", fontsize=9)
    right.tick_params(axis="x", labelsize=7, rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def command_line(cfg: ExperimentConfig) -> str:
    """The flags that differ from the defaults (paths from the defaults are left out)."""
    default = ExperimentConfig()
    parts = ["python -m trainer.experiment"]
    for f in fields(cfg):
        value, base = repo_relative(getattr(cfg, f.name)), repo_relative(getattr(default, f.name))
        if value != base and f.name not in ("threads", "force"):
            flag = "--" + f.name.replace("_", "-")
            if isinstance(value, bool):
                parts.append(flag if value else "--no-" + flag[2:])
            else:
                parts.append(f"{flag} {value}")
    return " ".join(parts)


def machine() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores (training device: see the cost table)"


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True)  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def write_report(cfg: ExperimentConfig, path: Path) -> Path:
    exact, es = load(cfg, "eval-exact"), load(cfg, "eval-es")
    if not exact:
        raise FileNotFoundError(f"no eval-exact/results.json under {cfg.output}")
    timings_path = Path(cfg.output) / TIMINGS
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = plot(exact, path.with_suffix(".png"))
    first = next(iter(exact.values()))[0]
    n = len(first["languages"])
    scope = f"first {cfg.eval_max_queries} questions" if cfg.eval_max_queries else "all queries"
    settings = {
        k: repo_relative(v)
        for k, v in asdict(cfg).items()
        if k not in ("output", "report", "force")
    }
    lines = [
        "# Hybrid batching on XQuAD-R: X-X vs X-Y vs hybrid",
        "",
        f"Generated by `{command_line(cfg)}` on {time.strftime('%Y-%m-%d', time.gmtime())} "
        f"(commit {commit()}); {machine()}.",
        "",
        f"Settings: `{json.dumps(settings)}`. Every trained arm: same seed(s), steps, batch size,"
        " learning rate and data; a fixed step budget without early stopping. Evaluation: "
        f"{first['queries']} queries, {first['candidates']} candidate sentences (encoded "
        "without their paragraph) from `xquad-r`, int8 ONNX models exported by "
        "`python -m export.onnx`, scored by `xlir eval`.",
        "",
        f"## XQuAD-R, exact search over the int8 vectors ({scope})",
        "",
        "mAP over the whole pool (ranx `map`), macro-averaged over query languages (Cross: over "
        f"the {n * (n - 1)} language pairs); rank distance over the multilingual pool (lower is better). "
        + ("Mean ± standard deviation over seeds. " if len(cfg.seed_list) > 1 else "")
        + "The paper's rows are fine-tuned XLM-R and LaBSE (batch 100, early stopping, GPU): "
        "a reference, not a like-for-like comparison.",
        "",
        *main_table(exact, model_name(cfg)),
        "",
        f"![results]({figure.name})",
        "",
        "## Head to head: the mean difference, and in how many query languages it holds",
        "",
        *head_to_head(exact),
        "",
    ]
    for metric, label in (("mono", "Mono mAP"), ("cross", f"Cross mAP (query language vs the "
                          f"{n - 1} others)"), ("multi", "Multi mAP"), ("rank_distance",
                          "Rank distance (lower is better)")):  # fmt: skip
        lines += [f"## Per query language: {label}", "", *language_table(exact, metric), ""]
    if es:
        lines += [
            "## Served through Elasticsearch (kNN over the int8 vectors, first "
            f"{cfg.es_max_queries or 'all'} questions per language)",
            "",
            "ES mAP is `map@100` (the kNN returns 100 hits); the exact columns are the same "
            "queries ranked by numpy over the whole pool; ANN recall@10 is the share of the exact "
            "top 10 that Elasticsearch returned.",
            "",
            *es_table(es),
            "",
        ]
    lines += [
        "## int8 export parity (vs the torch model, XQuAD-R probe)",
        "",
        "`python -m export.onnx` refuses an export below its thresholds; the experiment never "
        "passes `--force`.",
        "",
        *parity_table(cfg),
        "",
    ]
    lines += ["## Training cost", "", *cost_table(cfg, timings), ""]
    path.write_text("\n".join(lines))
    return path
