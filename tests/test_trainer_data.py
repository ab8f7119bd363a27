"""Loaders: SQuAD {lang}.json dirs and JSONL, sentence units, groups, the validation split.

`write_parallel_squad` builds the synthetic parallel data the training tests use too.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_models import WORDS
from trainer.data import answer_sentence, load_examples, sentence_spans

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad-dev-parallel"


def write_parallel_squad(
    directory: Path, langs=("en", "de", "es"), articles=10, paras=2, questions=2, seed=0
) -> Path:
    """SQuAD v1.1 files `{lang}.json`: language L is a fixed word permutation of English.

    Every paragraph has two sentences; each question copies 3 words of one sentence and its
    answer is a word of that sentence. English has every question; the other languages miss
    every 5th one (so ids exist in 1 to len(langs) languages).
    """
    rng = random.Random(seed)
    maps = {"en": {w: w for w in WORDS}}
    for la in langs:
        if la != "en":
            perm = WORDS[:]
            rng.shuffle(perm)
            maps[la] = dict(zip(WORDS, perm, strict=True))
    english = []
    qid = 0
    for a in range(articles):
        paragraphs = []
        for _ in range(paras):
            sents = [rng.sample(WORDS, 7) for _ in range(2)]
            qas = []
            for k in range(questions):
                s = k % 2
                qas.append({"id": f"q{qid:04d}", "words": rng.sample(sents[s], 3),
                            "sent": s, "answer": sents[s][3]})  # fmt: skip
                qid += 1
            paragraphs.append({"sents": sents, "qas": qas})
        english.append({"title": f"article {a}", "paragraphs": paragraphs})

    directory.mkdir(parents=True, exist_ok=True)
    for la in langs:
        tr = maps[la]
        data = []
        for art in english:
            paras_out = []
            for para in art["paragraphs"]:
                sents = [[tr[w] for w in s] for s in para["sents"]]
                texts = [" ".join(s).capitalize() + "." for s in sents]
                context = " ".join(texts)
                qas = []
                for q in para["qas"]:
                    if la != "en" and int(q["id"][1:]) % 5 == 4:
                        continue
                    offset = 0 if q["sent"] == 0 else len(texts[0]) + 1
                    answer = tr[q["answer"]]
                    start = context.lower().index(answer, offset)
                    qas.append({
                        "id": q["id"],
                        "question": " ".join(tr[w] for w in q["words"]).capitalize() + "?",
                        "answers": [{"text": context[start:start + len(answer)],
                                     "answer_start": start}],
                    })  # fmt: skip
                paras_out.append({"context": context, "qas": qas})
            data.append({"title": art["title"], "paragraphs": paras_out})
        (directory / f"{la}.json").write_text(json.dumps({"version": "1.1", "data": data}))
    return directory


def test_sentence_rule():
    text = (
        "Dr. Smith joined the U.S. Army in 1950. He left in 1955! Why? "
        "the lowercase start stays.\nNew line here 北京很大。上海也是。End"
    )
    got = [text[s:e] for s, e in sentence_spans(text)]
    assert got == [
        "Dr. Smith joined the U.S. Army in 1950.",
        "He left in 1955!",
        "Why? the lowercase start stays.",
        "New line here 北京很大。",
        "上海也是。",
        "End",
    ]


def test_answer_sentence_uses_nearest_match_when_offset_is_off():
    ctx = "Paris is big. Rome is old. Paris is far."
    assert answer_sentence(ctx, "Rome", 14) == (1, "Rome is old.")
    assert answer_sentence(ctx, "Rome", 10) == (1, "Rome is old.")  # approximate start
    assert answer_sentence(ctx, "Paris", 30) == (2, "Paris is far.")
    assert answer_sentence(ctx, "is old. Paris", 19) == (1, "Rome is old. Paris is far.")


def test_squad_dir_paragraph_and_sentence_units(tmp_path):
    d = write_parallel_squad(tmp_path / "squad")
    table = load_examples(d)
    st = table.stats()
    # 10 articles x 2 paragraphs x 2 questions = 40 ids; de/es miss 8 each
    assert st["ids"] == 40 and st["rows"] == 40 + 32 + 32
    assert st["rows_per_lang"] == {"de": 32, "en": 40, "es": 32}
    assert st["groups"] == 20  # one group per paragraph, across languages
    rows = table.rows(range(len(table)))
    assert all(r == "" for r in rows["context"])
    assert all(p.count(".") == 2 for p in rows["passage"])  # the whole paragraph
    for g in np.unique(table.groups):  # a group = the 2 questions of one paragraph
        assert len(set(table.pids[table.groups == g])) == 2

    sent = load_examples(d, unit="sentence")
    rows = sent.rows(range(len(sent)))
    for q, p, c in zip(rows["question"], rows["passage"], rows["context"], strict=True):
        assert p.count(".") == 1 and p in c
        assert all(w in p.lower() for w in q.lower().rstrip("?").split())
    assert sent.stats()["groups"] == 40  # one group per (paragraph, sentence)


def test_languages_can_be_restricted(tmp_path):
    d = write_parallel_squad(tmp_path / "squad")
    assert load_examples(d, langs="en,de").languages == ["de", "en"]


def test_jsonl_loader(tmp_path):
    rows = [
        {"id": 1, "lang": "en", "question": "q1", "passage": "p1"},
        {"id": 1, "lang": "de", "question": "f1", "passage": "d1"},
        {"id": 2, "lang": "en", "question": "q2", "passage": "p1"},  # shares id 1's passage
        {"id": 3, "lang": "en", "question": "q3", "passage": "p3"},
    ]
    f = tmp_path / "train.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = load_examples(f)
    assert list(table.pids) == ["1", "1", "2", "3"]
    assert table.groups[0] == table.groups[1] == table.groups[2] != table.groups[3]
    with pytest.raises(ValueError, match="paragraph"):
        load_examples(f, unit="sentence")


def test_jsonl_files_with_and_without_context_mix(tmp_path):
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"id": 1, "lang": "en", "question": "q", "passage": "p", "context": "c"}) + "\n"
    )
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"id": 1, "lang": "de", "question": "f", "passage": "d"}) + "\n"
    )
    table = load_examples(tmp_path)
    assert list(table.ds["context"]) == ["c", ""]
    (tmp_path / "c.jsonl").write_text('{"id": 2, "lang": "en", "question": "q"}\n')
    with pytest.raises(ValueError, match=r"c.jsonl:1: the row lacks the fields \['passage'\]"):
        load_examples(tmp_path)


def test_validation_split_holds_out_whole_ids(tmp_path):
    table = load_examples(write_parallel_squad(tmp_path / "squad"))
    train, val = table.split(0.2, seed=3)
    assert len(train) + len(val) == len(table)
    assert 0 < len(val) < len(table) / 2
    assert not set(train.pids) & set(val.pids)
    assert not set(train.groups) & set(val.groups)
    again, _ = table.split(0.2, seed=3)
    assert list(again.pids) == list(train.pids)


def test_real_squad_dev_parallel():
    assert SHARED.is_dir(), f"training data not found at {SHARED}"
    table = load_examples(SHARED)
    st = table.stats()
    assert st["rows_per_lang"] == {"da": 6740, "en": 9380, "es": 5851, "it": 6831}
    assert st["ids_in_2plus_langs"] == 8784
    counts = np.bincount(np.unique(table.pids, return_inverse=True)[1])
    assert (counts == 4).sum() == 3187
    assert st["groups"] >= 1800  # about one group per English paragraph (1827)
