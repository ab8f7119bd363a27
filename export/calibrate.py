"""Calibration for int8: what the recipe needs to know of the activations, measured by running
a float32 graph on fixed texts.

- per input channel of each weight MatMul, the max |x| (which channels carry outliers);
- per quantized activation tensor, the range its uint8 scale covers: fixed at export, so a
  text's vector does not depend on the texts batched with it.

Only real tokens count: padded positions never reach a vector (attention and pooling mask
them), so their values neither set a range nor mark an outlier. The texts come from the TRAINING data only (`squad-dev-parallel`, `ntrex128`, `tatoeba` under
`xlir_plugin.paths.data_dir()`), never from XQuAD-R, which is evaluation data (and the parity
probe). A fixed, deterministic selection: the same texts on every export.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
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


class Calibrator:
    """Runs float32 graphs on the calibration texts, tokenized by the export's tokenizer.json
    in `tokenizer_dir` as the serving encoder tokenizes them (prefixes, truncation)."""

    def __init__(self, calibration: Calibration, tokenizer_dir: Path, settings, threads: int = 2):
        self.calibration = calibration
        self.tokenizer_dir = Path(tokenizer_dir)
        self.settings = settings
        self.threads = threads
        self.name = calibration.name
        self.texts = len(calibration.queries) + len(calibration.passages)

    def channel_absmax(self, graph_path: Path, tensors: list[str]) -> dict[str, np.ndarray]:
        """Per-channel max |x| (last axis) of each tensor over the real tokens."""
        out: dict[str, np.ndarray] = {}
        for name, rows in self._rows(graph_path, tensors):
            value = np.abs(rows).max(0)
            out[name] = np.maximum(out[name], value) if name in out else value
        return out

    def token_ranges(
        self, graph_path: Path, tensors: list[str], coverage: float
    ) -> dict[str, tuple[float, float]]:
        """(low, high) of each tensor: the `coverage` quantile of the real tokens' largest
        value and the (1 - coverage) quantile of their smallest. Below 1, a rare token's spike
        is clipped rather than widening every token's quantization step."""
        lows: dict[str, list[np.ndarray]] = {name: [] for name in tensors}
        highs: dict[str, list[np.ndarray]] = {name: [] for name in tensors}
        for name, rows in self._rows(graph_path, tensors):
            lows[name].append(rows.min(1))
            highs[name].append(rows.max(1))
        return {
            name: (
                float(np.quantile(np.concatenate(lows[name]), 1.0 - coverage)),
                float(np.quantile(np.concatenate(highs[name]), coverage)),
            )
            for name in tensors
        }

    def _rows(self, graph_path: Path, tensors: list[str]) -> Iterator[tuple[str, np.ndarray]]:
        """(tensor, its rows at real tokens: (tokens, channels)) per batch of texts."""
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper

        from export.graph import save_model

        model = onnx.load(str(graph_path))
        known = {o.name for o in model.graph.output}
        for name in tensors:
            if name not in known:
                model.graph.output.append(
                    helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
                )
        with tempfile.TemporaryDirectory(prefix="xlir-calibrate-") as tmp:
            path = Path(tmp) / "calibrate.onnx"
            save_model(model, path)
            del model
            options = ort.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            inputs = {i.name for i in session.get_inputs()}
            tokenizer = _tokenizer(self.tokenizer_dir, self.settings.max_length)
            for texts, prefix in (
                (self.calibration.queries, self.settings.query_prefix),
                (self.calibration.passages, self.settings.passage_prefix),
            ):
                for i in range(0, len(texts), BATCH):
                    enc = tokenizer.encode_batch([prefix + t for t in texts[i : i + BATCH]])
                    mask = np.array([e.attention_mask for e in enc], np.int64)
                    feed = {"input_ids": np.array([e.ids for e in enc], np.int64)}
                    feed["attention_mask"] = mask
                    if "token_type_ids" in inputs:
                        feed["token_type_ids"] = np.zeros_like(mask)
                    real = mask.reshape(-1).astype(bool)
                    for name, value in zip(tensors, session.run(tensors, feed), strict=True):
                        yield name, value.reshape(-1, value.shape[-1])[real]
            del session


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
