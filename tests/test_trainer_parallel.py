"""Parallel-sentence sources and the pair sampler behind cross-lingual distillation."""

from __future__ import annotations

import json

import pytest
import torch

from trainer.losses import distillation
from trainer.parallel import (
    PairSampler,
    load_pairs_file,
    parse_sources,
    question_pairs,
)
from xlir_plugin.paths import data_dir


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def test_multiway_and_pair_files(tmp_path):
    multi = write_jsonl(tmp_path / "m.jsonl", [
        {"id": "a", "doc_id": "d1", "text": {"en": "Hello.", "de": "Hallo.", "zh": "你好。"}},
        {"id": "b", "doc_id": "d2", "text": {"en": "Bye.", "de": "Tschüss."}},
    ])  # fmt: skip
    pairs = load_pairs_file(multi)
    assert sorted(zip(pairs.lang, pairs.other, pairs.en, strict=True)) == [
        ("de", "Hallo.", "Hello."), ("de", "Tschüss.", "Bye."), ("zh", "你好。", "Hello.")
    ]  # fmt: skip
    assert pairs.group.count("d1") == 2  # one document stays on one side of a split
    tatoeba = write_jsonl(
        tmp_path / "t.jsonl", [{"id": "x", "lang": "ar", "en": "Hi.", "ar": "مرحبا."}]
    )
    assert load_pairs_file(tatoeba).other == ["مرحبا."]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "y", "lang": "ar", "en": "Hi."}])
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_pairs_file(bad)


def test_question_pairs_pivot_on_english():
    pairs = question_pairs(["1", "1", "1", "2"], ["en", "es", "it", "es"], ["Q", "P", "D", "X"])
    assert sorted(zip(pairs.lang, pairs.other, pairs.en, strict=True)) == [
        ("es", "P", "Q"), ("it", "D", "Q")
    ]  # fmt: skip
    assert all(pairs.as_query)


def test_split_holds_out_whole_groups():
    pairs = question_pairs(
        [str(i // 2) for i in range(200)], ["en", "de"] * 100, [f"q{i}" for i in range(200)]
    )
    train, val = pairs.split(0.2, seed=1)
    assert len(train) + len(val) == len(pairs) == 100
    assert 10 < len(val) < 30 and not set(train.group) & set(val.group)


def test_sources_spec(tmp_path):
    f = write_jsonl(tmp_path / "a.jsonl", [])
    assert parse_sources(f"{f}:2.5,qa") == [(str(f), 2.5), ("qa", 1.0)]
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        parse_sources(str(tmp_path / "missing.jsonl"))
    with pytest.raises(ValueError, match="positive"):
        parse_sources(f"{f}:0")


def test_pair_sampler_is_deterministic_and_weighted():
    a = question_pairs([str(i) for i in range(50) for _ in (0, 1)], ["en", "de"] * 50,
                       [f"a{i}" for i in range(100)])  # fmt: skip
    b = question_pairs([str(i) for i in range(50) for _ in (0, 1)], ["en", "fr"] * 50,
                       [f"b{i}" for i in range(100)])  # fmt: skip
    sampler = PairSampler([a, b], [3.0, 1.0], batch_size=16, seed=5)
    first = sampler.batch(7)
    assert first.other == PairSampler([a, b], [3.0, 1.0], batch_size=16, seed=5).batch(7).other
    assert len(first) == 16 and len(set(first.other)) == 16
    langs = [la for i in range(200) for la in sampler.batch(i).lang]
    assert 0.7 < langs.count("de") / len(langs) < 0.8  # weight 3:1
    rank1 = PairSampler([a, b], [3.0, 1.0], batch_size=16, seed=5, rank=1, world_size=2)
    assert next(iter(rank1)).other == sampler.batch(1).other


def test_distillation_loss_is_zero_only_on_the_teacher():
    t = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    assert float(distillation(t, t, t)) == pytest.approx(0.0)
    other = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    expected = (2 - 2 * (other * t).sum(-1)).mean()
    assert float(distillation(other, t, t)) == pytest.approx(float(expected), rel=1e-5)


def test_real_parallel_sets_cover_the_eval_languages():
    ntrex = load_pairs_file(data_dir() / "ntrex128" / "ntrex128.jsonl")
    tatoeba = load_pairs_file(data_dir() / "tatoeba" / "tatoeba_pairs.jsonl")
    langs = {"ar", "de", "el", "es", "hi", "ru", "th", "tr", "vi", "zh"}
    assert set(ntrex.languages()) == langs and len(ntrex) == 1997 * 10
    assert set(tatoeba.languages()) == langs and len(tatoeba) == 9 * 1000 + 548
