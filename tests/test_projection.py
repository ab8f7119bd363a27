"""The projection head: its file, its place in the graph, its training, and the cache that
rebuilds the default's export when the shipped head changes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xlir_plugin.errors import XlirError
from xlir_plugin.projection import Projection, load_projection


def _head(dim: int = 8, seed: int = 0) -> Projection:
    rng = np.random.default_rng(seed)
    weight = (np.eye(dim) + 0.3 * rng.standard_normal((dim, dim))).astype(np.float32)
    return Projection(weight, rng.standard_normal(dim).astype(np.float32) * 0.1, {"seed": seed})


def test_file_round_trip_and_fingerprint(tmp_path):
    head = _head()
    loaded = load_projection(head.save(tmp_path / "h.npz"))
    np.testing.assert_array_equal(loaded.weight, head.weight)
    np.testing.assert_array_equal(loaded.bias, head.bias)
    assert loaded.meta == {"seed": 0}
    assert loaded.sha256 == head.sha256 != _head(seed=1).sha256
    out = loaded.apply(np.ones((3, 8), np.float32))
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(XlirError, match="no projection head"):
        load_projection(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", weight=np.eye(4), bias=np.zeros(3), meta=np.array("{}"))
    with pytest.raises(XlirError, match="do not fit"):
        load_projection(tmp_path / "bad.npz")


def test_graph_head_equals_numpy(tmp_path):
    """model.onnx with the head == Projection.apply(model.onnx without it), on a tiny BERT."""
    import onnxruntime as ort
    from safetensors.numpy import load_file

    from export import graph
    from export.bert_graph import bert_graph
    from export.front import write_graph
    from tests.tiny_models import build_tiny_encoder
    from xlir_plugin.manifest import EncoderSettings
    from xlir_plugin.projection import PROJECTION_INFO_FILE

    path = build_tiny_encoder(tmp_path / "tiny", hidden=16, layers=1)
    config = json.loads((path / "config.json").read_text())
    fused = tmp_path / "fused.onnx"
    graph.save_model(bert_graph(load_file(str(path / "model.safetensors")), config), fused)
    head = _head(16)
    rng = np.random.default_rng(0)
    feed = {"input_ids": rng.integers(5, 50, (3, 7)), "attention_mask": np.ones((3, 7), np.int64)}
    feed["attention_mask"][1, 4:] = 0
    feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
    vectors = {}
    for name, projection in (("plain", None), ("head", head)):
        out = tmp_path / name
        out.mkdir()
        write_graph(fused, out, EncoderSettings(), projection=projection)
        session = ort.InferenceSession(
            str(out / graph.ONNX_FILE), providers=["CPUExecutionProvider"]
        )
        (vectors[name],) = session.run(None, feed)
        assert (out / PROJECTION_INFO_FILE).is_file() == (projection is not None)
    np.testing.assert_allclose(vectors["head"], head.apply(vectors["plain"]), atol=1e-5)
    assert not np.allclose(vectors["head"], vectors["plain"], atol=1e-2)
    info = json.loads((tmp_path / "head" / PROJECTION_INFO_FILE).read_text())
    assert info["sha256"] == head.sha256 and info["seed"] == 0


def _biased_sets(seed: int = 0):
    """Two synthetic parallel sets whose vectors carry a strong per-language offset: the
    situation of the real encoder (same-language passages rank first in a mixed pool)."""
    from trainer.projection_data import VectorSet

    rng = np.random.default_rng(seed)
    dim, langs = 24, ["aa", "bb", "cc"]
    offsets = {lang: 2.0 * rng.standard_normal(dim) for lang in langs}
    sets = []
    for name, n in (("qa", 240), ("sentences", 180)):
        meaning = rng.standard_normal((n, dim))
        rows = [(i, lang) for i in range(n) for lang in langs]

        def vec(i, lang, noise, meaning=meaning):
            v = meaning[i] + offsets[lang] + noise * rng.standard_normal(dim)
            return v / np.linalg.norm(v)

        sets.append(
            VectorSet(
                name,
                np.array([f"{name}{i}" for i, _ in rows], dtype=object),
                np.array([lang for _, lang in rows], dtype=object),
                np.array([i for i, _ in rows]),
                np.stack([vec(i, lang, 0.6) for i, lang in rows]).astype(np.float32),
                np.stack([vec(i, lang, 0.6) for i, lang in rows]).astype(np.float32),
                np.array([f"{lang}:{i}" for i, lang in rows]),
            )
        )
    return sets


@pytest.mark.slow
def test_hybrid_head_removes_language_bias():
    """Trained with hybrid batches, the head lifts held-out Multi and lowers rank distance
    from the identity's, and the best step is what it keeps."""
    from trainer.projection import ProjectionConfig, train_head, validate

    sets = _biased_sets()
    pairs = [s.split(0.25) for s in sets]
    train, val = [p[0] for p in pairs], [p[1] for p in pairs]
    cfg = ProjectionConfig(steps=150, batch_size=32, eval_every=50, lr=1e-2, progress=False)
    before = validate(Projection.identity(24), val)
    head, history = train_head(train, val, cfg, seed=0)
    after = validate(head, val)
    assert [h["step"] for h in history] == [0, 50, 100, 150]
    assert after["score"] == max(h["score"] for h in history)
    for name in ("qa", "sentences"):
        assert after[name]["multi"] > before[name]["multi"] + 0.1
        assert after[name]["rank_distance"] < before[name]["rank_distance"]


def test_vector_set_split_holds_out_whole_groups():
    sets = _biased_sets()
    train, val = sets[0].split(0.25, seed=3)
    assert not set(train.groups) & set(val.groups)
    assert len(set(val.groups)) == 60
    data, queries, cands = val.as_lareqa()
    assert len(data.questions) == len(queries) == 180 and len(data.candidates) == len(cands)
    assert all(len(data.relevant[q.id]) == 3 for q in data.questions)


def test_default_export_is_rebuilt_when_the_shipped_head_changes(tmp_path, monkeypatch):
    from export import cache
    from xlir_plugin import projection

    shipped = tmp_path / "shipped.npz"
    monkeypatch.setattr(projection, "DEFAULT_PROJECTION", shipped)
    out = tmp_path / "export"
    out.mkdir()
    assert not cache._other_projection("default", out)  # neither has a head
    _head(seed=0).save(shipped)
    assert cache._other_projection("default", out)  # a head shipped, the export has none
    info = out / projection.PROJECTION_INFO_FILE
    info.write_text(json.dumps(_head(seed=0).info()))
    assert not cache._other_projection("default", out)
    _head(seed=1).save(shipped)
    assert cache._other_projection("default", out)
    assert not cache._other_projection("e5-small-base", out)


@pytest.mark.slow
def test_run_writes_one_head_per_seed_and_ships_the_best(tmp_path, monkeypatch):
    from trainer import projection as tp

    monkeypatch.setattr(tp, "load_sets", lambda cfg: _biased_sets())
    cfg = tp.ProjectionConfig(
        output=str(tmp_path), steps=40, batch_size=32, eval_every=20, lr=1e-2, seeds="0,1",
        progress=False,
    )  # fmt: skip
    summary = tp.run(cfg, commit="abc123")
    scores = {s: v["best"]["score"] for s, v in summary["seeds"].items()}
    assert summary["chosen_seed"] == max(scores, key=scores.get)
    shipped = load_projection(tmp_path / "projection.npz")
    chosen = load_projection(tmp_path / f"seed{summary['chosen_seed']}.npz")
    assert shipped.sha256 == chosen.sha256
    assert shipped.meta["training_commit"] == "abc123"
    assert shipped.meta["validation"]["score"] == scores[summary["chosen_seed"]]
    assert shipped.meta["validation"]["score"] > shipped.meta["validation_base"]["score"]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["chosen_seed"] == summary["chosen_seed"]


def test_cli_flags_come_from_the_config():
    from trainer.config import build_parser
    from trainer.projection import ProjectionConfig

    parser = build_parser(ProjectionConfig, prog="p", description="d")
    args = parser.parse_args(["--seeds", "3,4", "--ntrex-weight", "2", "--no-progress"])
    cfg = ProjectionConfig(**vars(args))
    assert cfg.seed_list == [3, 4] and cfg.ntrex_weight == 2.0 and not cfg.progress


def test_export_delta_ships_a_head_with_its_eval_figures(tmp_path):
    from export.delta import main

    figures = {"mono": 0.8, "cross": 0.68, "multi": 0.54, "rank_distance": 414.0}
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"backends": {"exact": {"mean": figures}}}))
    head = _head(8)
    head.save(tmp_path / "trained.npz")
    out = tmp_path / "shipped.npz"
    code = main(["--projection", str(tmp_path / "trained.npz"), "--output", str(out),
                 "--eval", f"int8={results}"])  # fmt: skip
    assert code == 0
    shipped = load_projection(out)
    assert shipped.sha256 == head.sha256  # figures are provenance, not weights
    assert shipped.meta["eval"]["int8"]["multi"] == 0.54 and shipped.meta["seed"] == 0


def test_the_shipped_head_says_how_it_was_made_and_what_it_scored():
    """The committed default head: trained by trainer.projection on training data, selected on
    validation, and its recorded XQuAD-R figures keep int8 within .005 of fp32."""
    from xlir_plugin.projection import default_projection

    head = default_projection()
    assert head is not None and head.weight.shape == (384, 384)
    meta = head.meta
    assert meta["base"] == "e5-small-base" and meta["training_commit"] not in ("", "?")
    assert meta["validation"]["score"] > meta["validation_base"]["score"]
    int8, fp32 = meta["eval"]["int8"], meta["eval"]["fp32"]
    for column in ("mono", "cross", "multi"):
        assert abs(int8[column] - fp32[column]) <= 0.005
    assert "xquad" not in json.dumps(meta["data"]).lower()


def test_parallel_sets_take_each_rows_own_languages(tmp_path):
    from trainer.projection_data import ntrex_texts, tatoeba_texts

    rows = [
        {"id": "t0", "text": {"en": "A cat?", "de": "Eine Katze?"}},
        {"id": "t1", "text": {"en": "Hi.", "tr": "Selam.", "zh": "你好。"}},
    ]
    path = tmp_path / "multiway.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    tat = tatoeba_texts(path)
    assert tat.name == "tatoeba" and tat.queries == tat.passages
    assert list(zip(tat.pids, tat.langs, tat.groups.tolist(), strict=True)) == [
        ("t0", "de", 0), ("t0", "en", 0), ("t1", "en", 1), ("t1", "tr", 1), ("t1", "zh", 1),
    ]  # fmt: skip
    assert tat.queries[4] == "你好。"
    one = ntrex_texts(path, max_ids=1)
    assert one.name == "ntrex128" and len(set(one.pids)) == 1 and len(set(one.groups)) == 1
