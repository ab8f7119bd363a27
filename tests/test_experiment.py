"""`python -m trainer.experiment`: arms differ only in batching, and the report is built from
the results files (a tiny end-to-end run through every stage, Elasticsearch included)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.tiny_models import build_tiny_encoder
from trainer.experiment import eval_command, export_command, main, parse_args, train_command
from trainer.experiment_config import ExperimentConfig
from trainer.experiment_report import write_report

LANGS = ["en", "es", "de"]


def test_trained_arms_differ_only_in_batching(tmp_path):
    cfg = ExperimentConfig(output=str(tmp_path), train_data="train", eval_data="eval")
    xx = train_command(cfg, "xx", 7, tmp_path / "a")
    hybrid = train_command(cfg, "hybrid", 7, tmp_path / "a")
    changed = [(a, b) for a, b in zip(xx, hybrid, strict=True) if a != b]
    assert changed == [("xx", "hybrid")]
    for flag, value in (("--seed", "7"), ("--max-steps", "240"), ("--lr", "3e-05")):
        assert xx[xx.index(flag) + 1] == value
    assert "--freeze-embeddings" in xx and xx[xx.index("--eval-steps") + 1] == "0"


def test_export_and_eval_commands(tmp_path):
    cfg = ExperimentConfig(output=str(tmp_path), eval_data="eval", es_max_queries=50)
    export = export_command(cfg, "m", tmp_path / "onnx")
    assert export[export.index("--max-length") + 1] == "512"
    assert export[export.index("--quantize") + 1] == "int8"
    assert "--force" not in export  # the parity gate is never bypassed
    exact = eval_command(cfg, tmp_path / "onnx", tmp_path / "r" / "eval-exact", "exact")
    assert "--max-queries" not in exact and "--vectors-cache" in exact
    es = eval_command(cfg, tmp_path / "onnx", tmp_path / "r" / "eval-es", "es")
    assert es[es.index("--backend") + 1] == "both" and es[es.index("--max-queries") + 1] == "50"
    assert es[es.index("--vectors-cache") + 1] == exact[exact.index("--vectors-cache") + 1]


def test_unknown_arm_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--arms", "xx,zz"])
    assert exc.value.code == 2 and "unknown arm(s) ['zz']" in capsys.readouterr().err


def test_other_settings_never_reuse_a_finished_run(tmp_path, capsys):
    (tmp_path / "experiment.json").write_text(json.dumps({"steps": 240, "lr": 3e-5}))
    assert main(["--output", str(tmp_path), "--steps", "2000", "--lr", "1e-5"]) == 2
    err = capsys.readouterr().err
    assert "holds a run with other settings (steps, lr)" in err and "--force" in err


def fake_results(path: Path, shift: float, rank_distance: float) -> None:
    per_lang = {
        lang: {
            "mono": 0.7 + shift + i / 100,
            "cross": 0.5 + shift,
            "multi": 0.3 + shift,
            "r1_mono": 0.6,
            "r1_cross": 0.4,
            "r10_multi": 0.2,
            "rank_distance": rank_distance,
        }
        for i, lang in enumerate(LANGS)
    }
    mean = {k: sum(v[k] for v in per_lang.values()) / len(LANGS) for k in per_lang["en"]}
    path.mkdir(parents=True)
    results = {
        "languages": LANGS,
        "queries": 30,
        "candidates": 90,
        "backends": {"exact": {"per_lang": per_lang, "mean": mean}},
    }
    (path / "results.json").write_text(json.dumps(results))


def test_report_tables_come_from_the_results(tmp_path):
    cfg = ExperimentConfig(output=str(tmp_path), arms="base,xx,hybrid", seeds="1,2")
    fake_results(tmp_path / "base" / "eval-exact", 0.0, 900)
    for seed, jitter in ((1, 0.0), (2, 0.02)):
        fake_results(tmp_path / f"xx-s{seed}" / "eval-exact", 0.05 + jitter, 500)
        fake_results(tmp_path / f"hybrid-s{seed}" / "eval-exact", 0.1 + jitter, 400)
    (tmp_path / "timings.json").write_text(json.dumps({"xx-s1/train": 12.5}))

    text = write_report(cfg, tmp_path / "new" / "RESULTS.md").read_text()
    assert (tmp_path / "new" / "RESULTS.png").stat().st_size > 10_000
    row = next(line for line in text.splitlines() if "| hybrid |" in line and "ours" in line)
    # mono: mean over en/es/de of 0.7 + 0.1 + i/100 = 0.81, then over seeds (+0.02): 0.82
    assert "| 0.820 ± 0.014 |" in row and "| 400 ± 0 |" in row
    assert "| LaBSE (paper) | hybrid | 0.817 | 0.767 | 0.682 | - | - | - | 221 |" in text
    assert "| **unseen mean** |" in text  # de
    seen = next(line for line in text.splitlines() if line.startswith("| **seen mean**"))
    assert seen.endswith("| hybrid |")  # the best trained arm, by the mean over seeds
    assert "| en (seen) |" in text and "| de |" in text
    assert "| xx-s1 | - | 12.5 |" in text
    assert "int8 export parity" in text and "never passes `--force`" in text
    assert "| hybrid vs X-X | +0.050 (3/3 better) | +0.050 (3/3 better) |" in text
    assert "| -100 (3/3 better) |" in text  # rank distance: lower is better
    assert "Mean ± standard deviation over seeds" in text


def test_report_paths_are_repo_relative(tmp_path):
    shared = REPO_ROOT.parent / "shared" / "data"
    cfg = ExperimentConfig(
        output=str(tmp_path), arms="base", eval_data=str(shared / "mlqa-r"), base=str(tmp_path)
    )
    fake_results(tmp_path / "base" / "eval-exact", 0.0, 900)
    text = write_report(cfg, tmp_path / "RESULTS.md").read_text()
    assert '"eval_data": "../shared/data/mlqa-r"' in text
    assert "--eval-data ../shared/data/mlqa-r" in text  # the command line in the header
    assert f"--base {os.path.relpath(tmp_path, REPO_ROOT)} " in text
    assert str(REPO_ROOT.parent) not in text


@pytest.mark.slow
@pytest.mark.es
def test_tiny_experiment_end_to_end(tmp_path, es_settings, xquad_dir, monkeypatch):
    monkeypatch.setenv("XLIR_ES_URL", es_settings.url)
    monkeypatch.setenv("XLIR_ES_USER", es_settings.user or "")
    monkeypatch.setenv("XLIR_ES_PASSWORD", es_settings.password or "")
    base = build_tiny_encoder(tmp_path / "tiny", hidden=64)
    out = tmp_path / "exp"
    args = ["--base", str(base), "--arms", "base,hybrid", "--steps", "3", "--batch-size", "8",
            "--eval-langs", "en,es", "--eval-max-queries", "20", "--es-max-queries", "5",
            "--threads", "2", "--output", str(out)]  # fmt: skip
    assert main(args) == 0

    timings = json.loads((out / "timings.json").read_text())
    assert set(timings) == {
        f"{run}/{stage}"
        for run in ("base", "hybrid-s42")
        for stage in ("export", "eval-exact", "eval-es")
    } | {"hybrid-s42/train"}
    summary = json.loads((out / "hybrid-s42" / "model" / "train_summary.json").read_text())
    assert summary["steps"] == 3
    es = json.loads((out / "hybrid-s42" / "eval-es" / "results.json").read_text())
    assert es["queries"] == 10 and set(es["backends"]) == {"exact", "es"}
    text = (out / "RESULTS.md").read_text()
    assert "| tiny int8 (ours) | hybrid |" in text and "Served through Elasticsearch" in text
    assert "| en (seen) |" in text and "| hybrid-s42 | 3 |" in text
    assert "unseen mean" not in text  # en and es only: no unseen language evaluated
    parity = text.split("## int8 export parity")[1].split("##")[0].splitlines()
    gates = {line.split(" | ")[0]: line.split(" | ")[-1] for line in parity if "-s42 |" in line
             or line.startswith("| base |")}  # fmt: skip
    assert gates == {"| base": "passed |", "| hybrid-s42": "passed |"}, parity

    # a rerun finds every stage done and only rewrites the report
    before = (out / "hybrid-s42" / "onnx-int8" / "xlir.json").stat().st_mtime
    assert main(args) == 0
    assert (out / "hybrid-s42" / "onnx-int8" / "xlir.json").stat().st_mtime == before
