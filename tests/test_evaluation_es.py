"""The Elasticsearch backend scores like numpy when it sees the whole pool; the CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.onnx_fixtures import build_onnx_model
from tests.test_evaluation import CAND_ANGLES, QUERY_ANGLES, unit, write_toy
from xlir_plugin.cli import main
from xlir_plugin.evaluation import evaluate_vectors, load_lareqa
from xlir_plugin.evaluation.data import Candidate, LareqaData, Question

pytestmark = pytest.mark.es


def test_es_backend_reproduces_the_toy_set(es, index_name, tmp_path):
    data = load_lareqa(write_toy(tmp_path))
    result = evaluate_vectors(
        data, unit(QUERY_ANGLES), unit(CAND_ANGLES), es=es, es_depth=6, index=index_name,
        index_options="flat", progress=False,
    )  # fmt: skip
    exact, approx = result.backends["exact"], result.backends["es"]
    assert approx.map_metric == "map@6"  # the whole pool: same as full-depth map
    for lang, row in exact.per_lang.items():
        for column, value in row.items():
            if column != "rank_distance":  # exact backend only
                assert approx.per_lang[lang][column] == pytest.approx(value, abs=1e-12)
    assert approx.cross_map == exact.cross_map
    assert all(abs(v) < 1e-12 for k, v in result.gap.items() if "delta" in k)
    assert result.gap["multi_ann_recall_at_10"] == 1.0
    assert not es.indices.exists(index=index_name)  # deleted after the run


def test_es_backend_equals_exact_on_random_vectors(es, index_name):
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
    result = evaluate_vectors(
        data, queries, cands, es=es, es_depth=60, index=index_name, index_options="flat",
        progress=False,
    )  # fmt: skip
    exact, approx = result.backends["exact"], result.backends["es"]
    for lang in langs:
        for column in ("mono", "cross", "multi", "r1_mono", "r1_cross", "r10_multi"):
            assert approx.per_lang[lang][column] == pytest.approx(exact.per_lang[lang][column])
    for kind in ("mono", "cross", "multi"):
        assert result.gap[f"{kind}_ann_recall_at_10"] == 1.0


def test_cli_eval_on_real_xquad_subset(es_settings, xquad_dir, tmp_path, capsys):
    words = []
    for lang in ("en", "de", "zh"):
        paragraph = json.loads((xquad_dir / f"{lang}.json").read_text())["data"][0]
        words += paragraph["paragraphs"][0]["context"].split()
    build_onnx_model(tmp_path / "m", ["query:", "passage:", *words], dim=16)
    out = tmp_path / "out"
    args = ["eval", "--model", str(tmp_path / "m"), "--data", str(xquad_dir), "--langs", "en,de,zh",
            "--max-queries", "30", "--output", str(out), "--es-depth", "20",
            "--es-url", es_settings.url, "--es-user", es_settings.user,
            "--es-password", es_settings.password]  # fmt: skip
    assert main(args) == 0
    result = json.loads((out / "results.json").read_text())
    assert result["queries"] == 90 and set(result["backends"]) == {"exact", "es"}
    assert set(result["backends"]["exact"]["per_lang"]) == {"en", "de", "zh"}
    assert result["backends"]["es"]["map_metric"] == "map@20"
    assert 0 <= result["gap"]["multi_ann_recall_at_10"] <= 1
    assert result["timings"]["es_query"] > 0
    assert (out / "cross_map.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "| **mean** |" in printed and "Elasticsearch vs exact" in printed
