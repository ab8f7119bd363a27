"""Parity check: the exported model's vectors against the torch model's, on a probe set.

Figures: min and mean cosine between the two vectors of each probe text, and top-1 agreement:
for each probe query, is its nearest probe passage the same under torch and under ONNX?
(Without queries, each passage's nearest other passage is compared.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.probe import Probe
from xlir_plugin.manifest import EncoderSettings

BATCH = 32


@dataclass
class Thresholds:
    min_cosine: float
    mean_cosine: float
    top1_agreement: float = 0.0

    @classmethod
    def default(cls, quantization: str) -> Thresholds:
        return {
            "none": cls(min_cosine=0.999, mean_cosine=0.9999),
            "fp16": cls(min_cosine=0.99, mean_cosine=0.999),
            "int8": cls(min_cosine=0.97, mean_cosine=0.99),
        }[quantization]


# --- reference: the torch model -----------------------------------------------------------


def torch_vectors(model_path: str, probe: Probe, settings: EncoderSettings, max_length: int):
    """(queries, passages) vectors from the transformers model, pooled as `settings` says."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from export.graph import quiet_transformers

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(model_path, use_fast=True)
        model = AutoModel.from_pretrained(model_path).eval()

    def encode(texts: list[str], prefix: str) -> np.ndarray:
        out = []
        for i in range(0, len(texts), BATCH):
            batch = tokenizer(
                [prefix + t for t in texts[i : i + BATCH]],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = model(**batch).last_hidden_state
            out.append(pool(hidden.float().numpy(), batch["attention_mask"].numpy(), settings))
        return np.concatenate(out) if out else np.zeros((0, model.config.hidden_size), "f4")

    return encode(probe.queries, settings.query_prefix), encode(
        probe.passages, settings.passage_prefix
    )


def pool(hidden: np.ndarray, mask: np.ndarray, settings: EncoderSettings) -> np.ndarray:
    """Mean (over unmasked tokens) or CLS pooling, then optional L2 normalization."""
    if settings.pooling == "cls":
        vec = hidden[:, 0]
    else:
        m = mask[..., None].astype(hidden.dtype)
        vec = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
    if settings.normalize:
        vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
    return vec.astype(np.float32)


# --- candidate: the exported directory, read as the serving encoder reads it -------------


def onnx_vectors(onnx_dir: Path, probe: Probe):
    """(queries, passages) vectors from an exported directory, read by the serving encoder
    itself (`xlir_plugin.encoder.OnnxEncoder`), so the check measures exactly what is served."""
    from xlir_plugin.encoder import OnnxEncoder

    encoder = OnnxEncoder(onnx_dir)
    return np.asarray(encoder.encode_queries(probe.queries), np.float32), np.asarray(
        encoder.encode_passages(probe.passages), np.float32
    )


# --- comparison --------------------------------------------------------------------------


def compare(ref: tuple, got: tuple, paired: bool = False) -> dict:
    """min/mean cosine over all probe texts and top-1 retrieval agreement. `paired`: query i's
    answer is passage i (the XQuAD-R probe), so the torch model's own top-1 accuracy is added."""
    a = np.concatenate(ref).astype(np.float64)
    b = np.concatenate(got).astype(np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    (ref_q, ref_p), (got_q, got_p) = ref, got
    top_ref, top_got = _top1(ref_q, ref_p), _top1(got_q, got_p)
    figures = {
        "texts": int(len(a)),
        "cosine_min": round(float(cos.min()), 6),
        "cosine_mean": round(float(cos.mean()), 6),
        "top1_agreement": round(float((top_ref == top_got).mean()), 4),
    }
    if paired:
        figures["torch_top1_accuracy"] = round(
            float((top_ref == np.arange(len(top_ref))).mean()), 4
        )
        figures["onnx_top1_accuracy"] = round(float((top_got == np.arange(len(top_got))).mean()), 4)
    return figures


def _top1(queries: np.ndarray, passages: np.ndarray) -> np.ndarray:
    p = passages / np.maximum(np.linalg.norm(passages, axis=1, keepdims=True), 1e-12)
    if len(queries):
        q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        return (q @ p.T).argmax(1)
    sim = p @ p.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)


def failures(figures: dict, thresholds: Thresholds) -> list[str]:
    """Human-readable list of the thresholds not met (empty when the check passes)."""
    out = []
    if figures["cosine_min"] < thresholds.min_cosine:
        out.append(f"min cosine {figures['cosine_min']:.4f} < {thresholds.min_cosine}")
    if figures["cosine_mean"] < thresholds.mean_cosine:
        out.append(f"mean cosine {figures['cosine_mean']:.4f} < {thresholds.mean_cosine}")
    if figures["top1_agreement"] < thresholds.top1_agreement:
        out.append(f"top-1 agreement {figures['top1_agreement']:.3f} < {thresholds.top1_agreement}")
    return out
