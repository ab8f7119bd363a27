"""Evaluation metrics reproduce hand computations and ranx; the loader reads LAReQA files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xlir_plugin.evaluation.data import Candidate, LareqaData, Question, load_lareqa
from xlir_plugin.evaluation.metrics import average_precision, rank_distance, recall_at
from xlir_plugin.evaluation.retrieval import Layout, exact_ranks
from xlir_plugin.evaluation.run import score


def toy_data() -> LareqaData:
    """Languages a, b (questions and candidates) and c (candidates only); q1 has no c answer."""
    data = LareqaData()
    for cid in ["a0", "a1", "b0", "b1", "c0", "c1"]:
        data.candidates.append(Candidate(cid, cid[0], cid, ""))
    data.questions = [
        Question("q1", "a", "q1a"),
        Question("q1", "b", "q1b"),
        Question("q2", "a", "q2a"),
    ]
    data.relevant.update({"q1": {"a": "a0", "b": "b0"}, "q2": {"a": "a1", "b": "b1", "c": "c1"}})
    return data


CANDS = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [-1, 0]], dtype=np.float32)
QUERIES = np.array([[1, 0], [0, 1], [0, 1]], dtype=np.float32)


def test_toy_set_matches_hand_computation():
    data = toy_data()
    ranks = exact_ranks(Layout.build(data, data.languages), QUERIES, CANDS)
    # q1@b: mono rank 2, cross b->a rank 2; pool ranks of b0 and a0 are 4 and 5 (ties count for us)
    assert ranks.pair[("b", "b")].tolist() == [2] and ranks.pair[("b", "a")].tolist() == [2]
    assert ranks.multi["b"].tolist()[0][:2] == [5, 4]
    result = score(ranks, np.inf, with_bias=True, seconds=0)
    a, b = result.per_lang["a"], result.per_lang["b"]
    assert a["mono"] == 1.0 and a["cross"] == pytest.approx(0.75)  # a->b: 1, a->c: 1/2
    assert a["multi"] == pytest.approx((1 + (1 + 1 + 3 / 5) / 3) / 2)
    assert a["rank_distance"] == pytest.approx((1 + 4) / 2)
    assert (a["r1_mono"], a["r1_cross"], a["r10_multi"]) == (1.0, 0.5, 1.0)
    assert (b["mono"], b["cross"], b["r1_mono"]) == (0.5, 0.5, 0.0)
    assert b["multi"] == pytest.approx((1 / 4 + 2 / 5) / 2) and b["rank_distance"] == 1
    assert "c" not in result.per_lang  # candidates only: no query row
    assert result.mean["mono"] == 0.75
    assert result.mean["cross"] == pytest.approx((1 + 0.5 + 0.5) / 3)  # macro over the 3 pairs
    assert result.cross_map["a"] == {"a": 1.0, "b": 1.0, "c": 0.5}


def test_metrics_by_hand():
    ranks = np.array([[1, 3, np.nan], [np.inf, 2, 10]])
    assert average_precision(ranks).tolist() == pytest.approx(
        [(1 + 2 / 3) / 2, (1 / 2 + 2 / 10) / 3]
    )
    assert average_precision(ranks, depth=5).tolist() == pytest.approx(
        [(1 + 2 / 3) / 2, (1 / 2) / 3]
    )
    assert recall_at(ranks, 1).tolist() == [0.5, 0.0]
    assert recall_at(ranks, 10).tolist() == pytest.approx([1.0, 2 / 3])
    assert rank_distance(np.array([[1, 3, np.nan], [4, 2, 10]])).tolist() == [2, 8]


def test_metrics_agree_with_ranx():
    import ranx  # a dev dependency: missing means failing

    rng = np.random.default_rng(0)
    n_docs, ranks = 50, []
    qrels, run = {}, {}
    for q in range(40):
        relevant = rng.choice(n_docs, size=rng.integers(1, 4), replace=False)
        order = rng.permutation(n_docs)
        qrels[f"q{q}"] = {f"d{d}": 1 for d in relevant}
        run[f"q{q}"] = {f"d{d}": float(n_docs - i) for i, d in enumerate(order)}
        position = {d: i + 1 for i, d in enumerate(order)}
        ranks.append([position[d] for d in relevant] + [np.nan] * (3 - len(relevant)))
    expected = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), ["map", "recall@10"])
    assert average_precision(np.array(ranks)).mean() == pytest.approx(expected["map"])
    assert recall_at(np.array(ranks), 10).mean() == pytest.approx(expected["recall@10"])


def test_loader_reads_lareqa_files(tmp_path):
    def squad(sentences, question, answer_start, qid="x1"):
        context = " ".join(sentences)
        breaks, start = [], 0
        for s in sentences:
            breaks.append([start, start + len(s)])
            start += len(s) + 1
        qas = [
            {
                "id": qid,
                "question": question,
                "answers": [{"text": "?", "answer_start": answer_start}],
            }
        ]
        paragraph = {
            "context": context,
            "qas": qas,
            "sentences": sentences,
            "sentence_breaks": breaks,
        }
        return {"data": [{"title": "t", "paragraphs": [paragraph]}]}

    (tmp_path / "en.json").write_text(json.dumps(squad(["One fact.", "Two facts."], "Which?", 10)))
    (tmp_path / "de.json").write_text(json.dumps(squad(["Ein Satz.", "Zwei."], "Was?", 3)))
    data = load_lareqa(tmp_path)
    assert data.languages == ["de", "en"]
    assert data.relevant["x1"] == {"en": "en:0:0:1", "de": "de:0:0:0"}
    assert [c.text for c in data.candidates if c.lang == "en"] == ["One fact.", "Two facts."]


def test_xquad_r_has_the_papers_shape(xquad_dir):
    data = load_lareqa(xquad_dir)
    assert len(data.languages) == 11
    assert len(data.questions) == 11 * 1190
    per_lang = {lang: sum(c.lang == lang for c in data.candidates) for lang in data.languages}
    assert min(per_lang.values()) >= 852 and max(per_lang.values()) <= 1276
    assert all(len(rel) == 11 for rel in data.relevant.values())
