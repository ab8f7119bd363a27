"""Calibration for int8: which input channels of each MatMul carry activation outliers.

The texts come from the TRAINING data only (`squad-dev-parallel`, `ntrex128`, `tatoeba` under
`xlir_plugin.paths.data_dir()`), never from XQuAD-R, which is evaluation data (and the parity
probe). A fixed, deterministic selection: the same texts on every export.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from export.errors import ExportInputError

TRAINING_SETS = ("squad-dev-parallel", "ntrex128", "tatoeba")
NTREX_LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
BATCH = 16


@dataclass
class Calibration:
    """Texts to run the fp32 graph on: `queries` and `passages` get the model's prefixes."""

    name: str
    queries: list[str] = field(default_factory=list)
    passages: list[str] = field(default_factory=list)


def training_calibration(root: Path | None = None, per_set: int = 64) -> Calibration:
    """About 3 x 2 x `per_set` texts from the training sets found under `root` (the shared data
    dir): SQuAD questions and their paragraphs (en, es, da, it), NTREX and Tatoeba sentences
    (all 11 XQuAD-R languages between them). Raises ExportInputError when none is found."""
    if root is None:
        from xlir_plugin.paths import data_dir

        root = data_dir()
    root = Path(root)
    cal = Calibration(name="training:")
    found = []
    squad = [root / "squad-dev-parallel" / f"{lang}.json" for lang in ("en", "es", "da", "it")]
    if any(p.is_file() for p in squad):
        found.append("squad-dev-parallel")
        files = [p for p in squad if p.is_file()]
        for path in files:
            paragraphs = [
                para
                for article in json.loads(path.read_text(encoding="utf-8"))["data"]
                for para in article["paragraphs"]
                if para.get("qas")
            ]
            for para in _spread(paragraphs, per_set // len(files)):
                cal.queries.append(para["qas"][0]["question"])
                cal.passages.append(para["context"])
    ntrex = root / "ntrex128" / "ntrex128.jsonl"
    if ntrex.is_file():
        found.append("ntrex128")
        rows = [json.loads(line) for line in ntrex.read_text(encoding="utf-8").splitlines() if line]
        for i, row in enumerate(_spread(rows, per_set)):
            texts = row["text"]
            cal.queries.append(texts[NTREX_LANGS[i % len(NTREX_LANGS)]])
            cal.passages.append(texts[NTREX_LANGS[(i + 5) % len(NTREX_LANGS)]])
    tatoeba = root / "tatoeba" / "tatoeba_pairs.jsonl"
    if tatoeba.is_file():
        found.append("tatoeba")
        rows = [
            json.loads(line) for line in tatoeba.read_text(encoding="utf-8").splitlines() if line
        ]
        for row in _spread(rows, per_set):
            cal.queries.append(row[row["lang"]])
            cal.passages.append(row["en"])
    if not found:
        raise ExportInputError(
            f"int8 calibration needs training data ({', '.join(TRAINING_SETS)}) in {root}: "
            "set XLIR_DATA to the shared data dir"
        )
    cal.name += "+".join(found)
    return cal


def _spread(items: list, n: int) -> list:
    """`n` items evenly spread over `items` (all of them when fewer)."""
    if n <= 0 or not items:
        return []
    step = max(1, len(items) // n)
    return items[step // 2 :: step][:n]


def channel_absmax(
    model_path: Path,
    tensors: list[str],
    calibration: Calibration,
    tokenizer_dir: Path,
    settings,
    max_length: int,
    threads: int = 2,
) -> dict[str, np.ndarray]:
    """Per-channel max |x| of each tensor in `tensors` (last axis), over the calibration texts
    run through the fp32 graph at `model_path` in padded batches (tokenized with the
    export's tokenizer.json in `tokenizer_dir`), as served (padded positions
    included: dynamic quantization sees them too)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from export.graph import save_model

    model = onnx.load(str(model_path))
    known = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in known:
            model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    with tempfile.TemporaryDirectory(prefix="xlir-calibrate-") as tmp:
        path = Path(tmp) / "calibrate.onnx"
        save_model(model, path)
        del model
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = {i.name for i in session.get_inputs()}
        tokenizer = _tokenizer(Path(tokenizer_dir), max_length)
        out: dict[str, np.ndarray] = {}
        for texts, prefix in (
            (calibration.queries, settings.query_prefix),
            (calibration.passages, settings.passage_prefix),
        ):
            for i in range(0, len(texts), BATCH):
                enc = tokenizer.encode_batch([prefix + t for t in texts[i : i + BATCH]])
                feed = {
                    "input_ids": np.array([e.ids for e in enc], np.int64),
                    "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
                }
                if "token_type_ids" in inputs:
                    feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
                for name, value in zip(tensors, session.run(tensors, feed), strict=True):
                    value = np.abs(value.reshape(-1, value.shape[-1])).max(0)
                    out[name] = np.maximum(out[name], value) if name in out else value
        del session
    return out


def _tokenizer(model_dir: Path, max_length: int):
    """The export's tokenizer.json, truncating and padding (right) as the serving encoder does."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    pad = _pad_token(model_dir)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad) or 0, pad_token=pad)
    return tokenizer


def _pad_token(model_dir: Path) -> str:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = model_dir / name
        if path.is_file():
            pad = json.loads(path.read_text()).get("pad_token")
            if isinstance(pad, dict):
                pad = pad.get("content")
            if pad:
                return pad
    return "<pad>"
