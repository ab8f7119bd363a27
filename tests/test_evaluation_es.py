"""The Elasticsearch backend ranks exactly like numpy on a flat index, end to end via the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.onnx_fixtures import build_onnx_model
from xlir_plugin.cli import main
from xlir_plugin.encoder import OnnxEncoder
from xlir_plugin.evaluation.data import Candidate, LareqaData, Question
from xlir_plugin.evaluation.retrieval import Layout, es_ranks, exact_ranks
from xlir_plugin.evaluation.run import index_candidates

pytestmark = pytest.mark.es


def test_es_backend_equals_exact_on_a_flat_index(es, index_name, tmp_path):
    rng = np.random.default_rng(1)
    langs = ["a", "b", "c"]
    data = LareqaData()
    for lang in langs:
        data.candidates += [Candidate(f"{lang}{i}", lang, f"t{i}", "") for i in range(20)]
    for q in range(15):
        present = langs if q % 3 else langs[:2]  # some questions lack a translation in c
        data.questions += [Question(f"q{q}", lang, "x") for lang in present]
        data.relevant[f"q{q}"] = {lang: f"{lang}{q}" for lang in present}
    cands = rng.standard_normal((60, 8)).astype(np.float32)
    cands /= np.linalg.norm(cands, axis=1, keepdims=True)
    queries = rng.standard_normal((len(data.questions), 8)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    build_onnx_model(tmp_path / "m", ["x"], dim=8)
    index_candidates(es, index_name, OnnxEncoder(tmp_path / "m"), data, cands, {"type": "flat"})

    layout = Layout.build(data, langs)
    exact = exact_ranks(layout, queries, cands)
    approx = es_ranks(es, index_name, layout, queries, depth=60, num_candidates=60)
    for key, want in exact.pair.items():
        np.testing.assert_array_equal(approx.pair[key], want)
    for lang in langs:
        np.testing.assert_array_equal(approx.multi[lang], exact.multi[lang])


def test_cli_eval_on_real_xquad_subset(es_settings, xquad_dir, tmp_path, capsys):
    words = ["query:", "passage:"] + " ".join(
        json.loads((xquad_dir / "en.json").read_text())["data"][0]["paragraphs"][0][
            "context"
        ].split()
    ).split()
    build_onnx_model(tmp_path / "m", words, dim=16)
    out = tmp_path / "out"
    args = ["eval", "--model", str(tmp_path / "m"), "--data", str(xquad_dir), "--langs", "en,de,zh",
            "--max-queries", "20", "--output", str(out), "--es-url", es_settings.url,
            "--es-user", es_settings.user, "--es-password", es_settings.password]  # fmt: skip
    assert main(args) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["queries"] == 60 and set(result["backends"]) == {"exact", "es"}
    assert set(result["backends"]["exact"]["per_lang"]) == {"en", "de", "zh"}
    assert 0 <= result["gap"]["ann_recall_at_10"] <= 1
    assert (out / "cross_map.png").stat().st_size > 1000
    assert "| **mean** |" in capsys.readouterr().out
