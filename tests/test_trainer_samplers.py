"""The hybrid batch sampler: batch types, alpha, no repeated ids, determinism, ranks."""

from __future__ import annotations

import time
from collections import Counter

import numpy as np
import pytest

from trainer.samplers import HybridBatchSampler

LANGS = ["ar", "de", "en", "zh"]


def make_table(n_ids=600, per_group=3, seed=0):
    """Rows (pid, lang, group): every id in en, others in a random subset of languages."""
    rng = np.random.default_rng(seed)
    pids, langs, groups = [], [], []
    for i in range(n_ids):
        present = ["en"] + [la for la in LANGS if la != "en" and rng.random() < 0.6]
        for la in present:
            pids.append(f"q{i}")
            langs.append(la)
            groups.append(i // per_group)  # the questions of one paragraph
    return np.array(pids), np.array(langs), np.array(groups)


PIDS, LANG_COL, GROUPS = make_table()


def sampler(**kw):
    args = dict(batch_size=32, batching="hybrid", alpha=0.5, seed=7, num_batches=2000)
    args.update(kw)
    return HybridBatchSampler(PIDS, LANG_COL, GROUPS, **args)


@pytest.fixture(scope="module")
def batches():
    return list(sampler())


def test_alpha_share_within_3_points(batches):
    assert len(batches) == 2000
    share = np.mean([b.kind == "xx" for b in batches])
    assert abs(share - 0.5) < 0.03
    share = np.mean([b.kind == "xx" for b in sampler(alpha=0.3, seed=1)])
    assert abs(share - 0.3) < 0.03


def test_xx_batches_are_single_language(batches):
    xx = [b for b in batches if b.kind == "xx"]
    assert xx
    for b in xx:
        assert len(set(LANG_COL[b.query_rows]) | set(LANG_COL[b.passage_rows])) == 1
        assert np.array_equal(b.query_rows, b.passage_rows)
    # uniform language draw: each of the 4 languages near 1/4 of X-X batches
    counts = Counter(LANG_COL[b.query_rows[0]] for b in xx)
    assert set(counts) == set(LANGS)
    assert all(abs(c / len(xx) - 0.25) < 0.05 for c in counts.values())


def test_xy_pairs_cross_languages_of_one_id(batches):
    xy = [b for b in batches if b.kind == "xy"]
    assert xy
    seen = set()
    for b in xy:
        assert np.all(LANG_COL[b.query_rows] != LANG_COL[b.passage_rows])
        assert np.all(PIDS[b.query_rows] == PIDS[b.passage_rows])
        seen |= set(zip(LANG_COL[b.query_rows], LANG_COL[b.passage_rows], strict=True))
    assert len(seen) == len(LANGS) * (len(LANGS) - 1)  # every ordered language pair drawn


def test_no_batch_repeats_a_parallel_id_or_group(batches):
    for b in batches:
        assert len(b) == 32
        assert len(set(PIDS[b.query_rows])) == len(b)
        assert len(set(GROUPS[b.query_rows])) == len(b)


def test_same_seed_same_batches(batches):
    again = list(sampler())
    assert all(
        a.kind == b.kind and np.array_equal(a.query_rows, b.query_rows)
        and np.array_equal(a.passage_rows, b.passage_rows)
        for a, b in zip(batches, again, strict=True)
    )  # fmt: skip
    other = list(sampler(seed=8, num_batches=50))
    assert (
        sum(
            np.array_equal(a.query_rows, b.query_rows) for a, b in zip(batches, other, strict=False)
        )
        < 5
    )


def test_two_ranks_never_share_a_batch(batches):
    r0 = list(sampler(rank=0, world_size=2, num_batches=1000))
    r1 = list(sampler(rank=1, world_size=2, num_batches=1000))
    keys0 = {tuple(b.query_rows) + tuple(b.passage_rows) for b in r0}
    keys1 = {tuple(b.query_rows) + tuple(b.passage_rows) for b in r1}
    assert len(keys0) == 1000 and len(keys1) == 1000
    assert not keys0 & keys1
    # both ranks read one global stream: rank r's i-th batch is global batch 2i + r
    assert np.array_equal(r1[3].query_rows, batches[7].query_rows)
    assert np.array_equal(r0[3].query_rows, batches[6].query_rows)


def test_resume_start_continues_the_stream(batches):
    resumed = list(sampler(start=1990))
    assert len(resumed) == 10
    assert all(
        np.array_equal(a.query_rows, b.query_rows)
        for a, b in zip(resumed, batches[1990:], strict=False)
    )


def test_pure_batching_modes():
    assert {b.kind for b in sampler(batching="xx", num_batches=200)} == {"xx"}
    assert {b.kind for b in sampler(batching="xy", num_batches=200)} == {"xy"}


def test_size_proportional_language_draw():
    pids = np.array([f"p{i}" for i in range(800)] + [f"p{i}" for i in range(200)])
    langs = np.array(["en"] * 800 + ["de"] * 200)
    s = HybridBatchSampler(pids, langs, batch_size=8, batching="xx", lang_sampling="size",
                           num_batches=2000)  # fmt: skip
    share_en = np.mean([langs[b.query_rows[0]] == "en" for b in s])
    assert abs(share_en - 0.8) < 0.03


def test_small_language_gives_smaller_batch_without_repeats():
    pids = np.array(["a", "b", "c", "a", "b"])
    langs = np.array(["en", "en", "en", "de", "de"])
    s = HybridBatchSampler(pids, langs, batch_size=4, batching="xx", num_batches=50)
    for b in s:
        assert (
            len(set(pids[b.query_rows])) == len(b) == (3 if langs[b.query_rows[0]] == "en" else 2)
        )


def test_xy_needs_ids_in_two_languages():
    with pytest.raises(ValueError, match="2 languages"):
        HybridBatchSampler(["a", "b"], ["en", "de"], batching="xy")
    with pytest.raises(ValueError, match="same group"):
        HybridBatchSampler(["a", "a"], ["en", "de"], groups=[1, 2])


def test_fast_enough():
    rng = np.random.default_rng(0)
    n = 25_000
    pids, langs = rng.integers(0, 9000, n), rng.integers(0, 4, n)
    t0 = time.perf_counter()
    out = list(HybridBatchSampler(pids, langs, pids // 5, batch_size=32, num_batches=2000))
    assert len(out) == 2000
    assert time.perf_counter() - t0 < 3.0
