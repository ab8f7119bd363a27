"""The vectors an evaluation ranks: encoded once with a progress bar, cached in an .npz.

The cache is keyed by the model (sha256 and name) and the very texts, per side, so a run over
a subset of the questions still reuses the candidate vectors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .data import LareqaData


def encode(encoder, texts: list[str], kind: str, chunk: int = 256, progress: bool = True):
    """Embed with a progress bar (the encoder sorts each chunk by length itself)."""
    method = encoder.encode_queries if kind == "query" else encoder.encode_passages
    parts = []
    with tqdm(
        total=len(texts), desc=f"encoding {kind} texts", unit="text", disable=not progress
    ) as bar:
        for start in range(0, len(texts), chunk):
            parts.append(method(texts[start : start + chunk]))
            bar.update(len(parts[-1]))
    if not parts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    return np.concatenate(parts)


def candidate_texts(data: LareqaData, context: bool) -> list[str]:
    """Sentence only, or (LAReQA) sentence followed by its paragraph; the encoder truncates."""
    return [f"{c.text} {c.context}" if context else c.text for c in data.candidates]


def vectors_key(model, texts: list[str]) -> str:
    """Names one side's vectors: the model (sha256 and name) and the texts, in order."""
    digest = hashlib.sha256(f"{model.manifest.sha256}\n{model.model_name}\n".encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def load_vectors(path: str | Path | None, keys: dict[str, str]) -> dict[str, np.ndarray]:
    """The sides (cands, queries) the cache holds for these very texts."""
    if not path or not Path(path).is_file():
        return {}
    with np.load(path) as saved:
        return {
            side: saved[side]
            for side, key in keys.items()
            if f"{side}_key" in saved.files and str(saved[f"{side}_key"]) == key
        }


def save_vectors(
    path: str | Path, keys: dict[str, str], cands: np.ndarray, queries: np.ndarray
) -> None:
    """Both sides with their keys, for `load_vectors` to find again."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path, cands_key=keys["cands"], cands=cands, queries_key=keys["queries"], queries=queries
    )
