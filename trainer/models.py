"""A dual encoder: one Hugging Face `AutoModel` + pooling (mean or CLS) + L2 normalisation."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trainer.losses import distillation, info_nce

POOLINGS = ("mean", "cls")


def resolve_base(name: str) -> str:
    """A local directory as is; else `xlir_plugin.default_model.resolve_hf_model` (which knows
    `default`), else the name as a hub id."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    try:
        from xlir_plugin.default_model import resolve_hf_model
    except ImportError as exc:
        if name == "default":
            raise RuntimeError("the default model needs xlir_plugin.default_model") from exc
        return name
    return resolve_hf_model(name)


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")


class Encoder(nn.Module):
    """Sentence embeddings from token states; the same weights encode queries and passages."""

    def __init__(self, model: nn.Module, pooling: str = "mean", normalize: bool = True):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.model, self.pooling, self.normalize = model, pooling, normalize

    @classmethod
    def from_pretrained(cls, path: str, pooling: str = "mean", normalize: bool = True, **kw):
        from transformers import AutoModel

        return cls(AutoModel.from_pretrained(path, **kw), pooling, normalize)

    def forward(self, input_ids, attention_mask, **extra) -> torch.Tensor:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
        emb = pool(out.last_hidden_state, attention_mask, self.pooling)
        return F.normalize(emb.float(), dim=-1) if self.normalize else emb.float()


class ContrastiveModel(nn.Module):
    """Encoder + InfoNCE (+ distillation) in one forward: one DDP forward per step."""

    def __init__(
        self,
        encoder: Encoder,
        temperature: float = 0.05,
        symmetric: bool = False,
        distill_weight: float = 0.0,
    ):
        super().__init__()
        self.encoder, self.temperature, self.symmetric = encoder, temperature, symmetric
        self.distill_weight = distill_weight

    @staticmethod
    def distill_loss(other: torch.Tensor, en: torch.Tensor, teacher: torch.Tensor):
        return distillation(other, en, teacher)

    def forward(
        self, queries: dict, passages: dict, pairs: dict | None = None, teacher=None
    ) -> dict[str, torch.Tensor]:
        """Losses of one batch: ``qa`` (InfoNCE), ``distill`` when `pairs` (the student's
        inputs: translations first, then their English texts) and `teacher` (the teacher's
        vectors of the English texts) are given, and ``loss``, their weighted sum."""
        q = self.encoder(**queries)
        p = self.encoder(**passages)
        qa = info_nce(q, p, self.temperature, self.symmetric, normalized=self.encoder.normalize)
        out = {"qa": qa, "loss": qa}
        if pairs is not None:
            other, en = self.encoder(**pairs).chunk(2)
            out["distill"] = self.distill_loss(other, en, teacher)
            out["loss"] = qa + self.distill_weight * out["distill"]
        return out
