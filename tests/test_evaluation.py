"""Evaluation: ranx wrappers and the whole scoring path reproduce hand computations exactly.

The toy set has three languages a, b, c written as LAReQA files; question q1 exists in all
three, q2 only in a and b. Vectors are fixed 2-d unit vectors given by an angle, so cosine
order = order of angular distance, which makes every rank easy to check by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xlir_plugin.evaluation import EvalResult, evaluate_vectors, first_questions, load_lareqa
from xlir_plugin.evaluation.data import answer_sentence
from xlir_plugin.evaluation.metrics import PAD, rank_distance, ranks_from_order, ranx_scores
from xlir_plugin.evaluation.report import write_outputs


def squad(paragraphs: list[tuple[list[str], list[tuple[str, str, int]]]]) -> dict:
    """A LAReQA file: paragraphs of (sentences, [(qid, question, answer sentence index)])."""
    out = []
    for sentences, questions in paragraphs:
        breaks, start = [], 0
        for s in sentences:
            breaks.append([start, start + len(s)])
            start += len(s) + 1
        qas = [
            {
                "id": qid,
                "question": text,
                # the answer starts 2 characters into its sentence
                "answers": [{"text": "x", "answer_start": breaks[index][0] + 2}],
            }
            for qid, text, index in questions
        ]
        out.append(
            {
                "context": " ".join(sentences),
                "qas": qas,
                "sentences": sentences,
                "sentence_breaks": breaks,
            }
        )
    return {"version": "toy", "data": [{"title": "t", "paragraphs": out}]}


def write_toy(root: Path) -> Path:
    files = {
        "a": squad([(["A zero.", "A one."], [("q1", "qa1", 0), ("q2", "qa2", 1)])]),
        "b": squad([(["B zero.", "B one."], [("q1", "qb1", 0), ("q2", "qb2", 1)])]),
        "c": squad([(["C zero.", "C one."], [("q1", "qc1", 0)])]),  # no q2 in c
    }
    for lang, content in files.items():
        (root / f"{lang}.json").write_text(json.dumps(content))
    return root


def unit(degrees) -> np.ndarray:
    r = np.radians(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(r), np.sin(r)], axis=1).astype(np.float32)


# candidates in file order a0 a1 b0 b1 c0 c1; queries in file order q1@a q2@a q1@b q2@b q1@c
CAND_ANGLES = [0, 90, 20, 60, 170, 40]
QUERY_ANGLES = [5, 80, 48, 100, 150]


def test_ranx_wrapper_by_hand():
    qrels = np.array([[3, PAD], [0, 5]])
    run = np.array([[1, 3, PAD], [5, 2, 0]])
    got = ranx_scores(qrels, run, ["map", "map@2", "recall@1", "recall@10"])
    assert got["map"].tolist() == [1 / 2, (1 / 1 + 2 / 3) / 2]
    assert got["map@2"].tolist() == [1 / 2, (1 / 1) / 2]  # the item at rank 3 counts 0
    assert got["recall@1"].tolist() == [0.0, 0.5]
    assert got["recall@10"].tolist() == [1.0, 1.0]
    # a relevant candidate missing from the run counts 0 (ES top k)
    missing = ranx_scores(np.array([[7, 1]]), np.array([[1, 2, 3]]), ["map"])["map"]
    assert missing.tolist() == [(1 / 1) / 2]


def test_ranks_and_rank_distance_by_hand():
    order = np.array([[2, 0, 1], [1, 2, 0]])
    ranks = ranks_from_order(order, np.array([[0, 1], [0, PAD]]))
    np.testing.assert_array_equal(ranks, [[2, 3], [3, np.nan]])
    np.testing.assert_array_equal(rank_distance(np.array([[1, 3, np.nan], [4, 2, 10]])), [2, 8])


def test_answer_sentence_uses_half_open_breaks():
    breaks = [[0, 10], [10, 20], [21, 30]]  # zh-style contiguous, then a space
    assert [answer_sentence(breaks, s) for s in (0, 9, 10, 19, 21, 29)] == [0, 0, 1, 1, 2, 2]


def test_loader_keeps_candidates_by_position_and_partial_questions(tmp_path):
    data = load_lareqa(write_toy(tmp_path))
    assert data.languages == ["a", "b", "c"]
    assert [c.id for c in data.candidates] == [f"{x}:0:0:{i}" for x in "abc" for i in (0, 1)]
    assert data.relevant["q1"] == {"a": "a:0:0:0", "b": "b:0:0:0", "c": "c:0:0:0"}
    assert data.relevant["q2"] == {"a": "a:0:0:1", "b": "b:0:0:1"}
    assert [(q.id, q.lang) for q in data.questions] == [
        ("q1", "a"), ("q2", "a"), ("q1", "b"), ("q2", "b"), ("q1", "c"),
    ]  # fmt: skip
    short = first_questions(data, 1)
    assert [(q.id, q.lang) for q in short.questions] == [("q1", "a"), ("q1", "b"), ("q1", "c")]
    assert len(short.candidates) == 6


def toy_result(tmp_path) -> EvalResult:
    data = load_lareqa(write_toy(tmp_path))
    return evaluate_vectors(
        data, unit(QUERY_ANGLES), unit(CAND_ANGLES), backends=("exact",), progress=False
    )


def test_toy_set_reproduces_hand_computed_figures(tmp_path):
    res = toy_result(tmp_path).backends["exact"]
    a, b, c = (res.per_lang[x] for x in "abc")
    # Mono: b's q1 ranks b1 (12 deg) above b0 (28 deg) -> AP 1/2
    assert (a["mono"], b["mono"], c["mono"]) == (1.0, 0.75, 1.0)
    assert (a["r1_mono"], b["r1_mono"], c["r1_mono"]) == (1.0, 0.5, 1.0)
    # Cross: a->b 1, a->c 1/2 (q2 has no c answer: skipped), b->a 3/4, b->c 1/2, c->a 1/2, c->b 1/2
    assert res.cross_map == {
        "a": {"a": 1.0, "b": 1.0, "c": 0.5},
        "b": {"a": 0.75, "b": 0.75, "c": 0.5},
        "c": {"a": 0.5, "b": 0.5, "c": 1.0},
    }
    assert (a["cross"], b["cross"], c["cross"]) == (0.75, 0.625, 0.5)
    assert (a["r1_cross"], b["r1_cross"], c["r1_cross"]) == (0.5, 0.25, 0.0)
    # Multi: pool ranks q1@a (1, 2, 6), q2@a (1, 2), q1@b (5, 3, 6), q2@b (1, 2), q1@c (6, 5, 1)
    ap = {
        "q1a": (1 + 2 / 2 + 3 / 6) / 3,
        "q1b": (1 / 3 + 2 / 5 + 3 / 6) / 3,
        "q1c": (1 + 2 / 5 + 3 / 6) / 3,
    }
    assert a["multi"] == pytest.approx((ap["q1a"] + 1) / 2, abs=1e-12)
    assert b["multi"] == pytest.approx((ap["q1b"] + 1) / 2, abs=1e-12)
    assert c["multi"] == pytest.approx(ap["q1c"], abs=1e-12)
    assert (a["r10_multi"], b["r10_multi"], c["r10_multi"]) == (1.0, 1.0, 1.0)
    assert (a["rank_distance"], b["rank_distance"], c["rank_distance"]) == (3.0, 2.0, 5.0)
    # macro averages: Cross over the 6 pairs, the rest over the 3 query languages
    assert res.mean["mono"] == pytest.approx(2.75 / 3, abs=1e-12)
    assert res.mean["cross"] == pytest.approx(3.75 / 6, abs=1e-12)
    assert res.mean["r1_cross"] == pytest.approx(1.5 / 6, abs=1e-12)
    assert res.mean["multi"] == pytest.approx(
        ((ap["q1a"] + 1) / 2 + (ap["q1b"] + 1) / 2 + ap["q1c"]) / 3, abs=1e-12
    )
    assert res.mean["rank_distance"] == pytest.approx(10 / 3, abs=1e-12)
    assert res.queries == {"mono": 5, "cross": 8, "multi": 5}


def test_depth_truncates_average_precision(tmp_path):
    data = load_lareqa(write_toy(tmp_path))
    res = evaluate_vectors(
        data, unit(QUERY_ANGLES), unit(CAND_ANGLES), backends=("exact",), depth=2, progress=False
    ).backends["exact"]
    assert res.map_metric == "map@2"
    # q1@b's pool ranks are 3, 5, 6: nothing within depth 2
    assert res.per_lang["b"]["multi"] == pytest.approx((0 + 1) / 2)
    assert res.per_lang["a"]["multi"] == pytest.approx(((1 + 1) / 3 + 1) / 2)


def test_candidate_only_language(tmp_path):
    write_toy(tmp_path)
    (tmp_path / "d.json").write_text(json.dumps(squad([(["D zero.", "D one."], [])])))
    data = load_lareqa(tmp_path)
    # d's candidates (175 and 185 deg) rank below every answer of a's queries
    cands = np.concatenate([unit(CAND_ANGLES), unit([175, 185])])
    res = evaluate_vectors(data, unit(QUERY_ANGLES), cands, backends=("exact",), progress=False)
    exact = res.backends["exact"]
    assert set(exact.per_lang) == {"a", "b", "c"}  # d has no query row
    assert "d" not in exact.cross_map["a"]  # no answer in d: the pair x->d has no queries
    assert exact.cross_map["b"] == {"a": 0.75, "b": 0.75, "c": 0.5}  # unchanged by d
    assert exact.per_lang["a"]["multi"] == pytest.approx((5 / 6 + 1) / 2, abs=1e-12)
    assert res.languages == ["a", "b", "c", "d"]


def test_outputs_are_written(tmp_path):
    result = toy_result(tmp_path)
    paths = write_outputs(result, tmp_path / "out")
    assert [p.name for p in paths] == ["results.json", "results.md", "cross_map.png"]
    saved = json.loads(paths[0].read_text())
    assert saved["backends"]["exact"]["mean"]["mono"] == pytest.approx(2.75 / 3)
    table = paths[1].read_text()
    assert "| **mean** | 0.917 | 0.625 |" in table
    assert paths[2].stat().st_size > 1000
    assert "which can reach 1 with 3 languages" in table  # the set's own count, not XQuAD-R's
    assert "10/11" not in table


def test_xquad_r_has_the_papers_shape(xquad_dir):
    data = load_lareqa(xquad_dir)
    assert len(data.languages) == 11
    assert len(data.questions) == 11 * 1190
    per_lang = {lang: sum(c.lang == lang for c in data.candidates) for lang in data.languages}
    assert per_lang["th"] == 852 and per_lang["de"] == 1276  # the LAReQA README's counts
    assert sum(per_lang.values()) == 13014
    assert all(len(rel) == 11 for rel in data.relevant.values())


def test_vectors_cache_reuses_each_side_it_holds(xquad_dir, tmp_path):
    from tests.onnx_fixtures import build_onnx_model, words_of
    from xlir_plugin.evaluation import evaluate

    data = load_lareqa(xquad_dir, ["en", "de"])
    build_onnx_model(tmp_path / "m", ["query:", "passage:", *words_of(
        [c.text for c in data.candidates[:200]])], dim=16)  # fmt: skip
    cache = tmp_path / "vectors.npz"
    run = dict(langs=["en", "de"], backends=["exact"], progress=False, vectors_cache=cache)
    full = evaluate(tmp_path / "m", xquad_dir, **run)
    assert full.settings["vectors"] == "encoded" and cache.is_file()
    again = evaluate(tmp_path / "m", xquad_dir, **run)
    assert again.settings["vectors"] == "cached"
    assert again.backends["exact"].mean == full.backends["exact"].mean
    subset = evaluate(tmp_path / "m", xquad_dir, max_queries=20, **run)
    assert subset.settings["vectors"] == "cands cached"  # only the 40 questions were encoded
    build_onnx_model(tmp_path / "m", ["query:", "passage:", "berlin"], dim=16, seed=1)
    other = evaluate(tmp_path / "m", xquad_dir, **run)
    assert other.settings["vectors"] == "encoded"  # another model: nothing reused
