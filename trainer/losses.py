"""InfoNCE with in-batch negatives over cosine scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(
    queries: torch.Tensor,
    passages: torch.Tensor,
    temperature: float = 0.05,
    symmetric: bool = False,
    normalized: bool = True,
) -> torch.Tensor:
    """Mean cross-entropy of each query's positive (same row) against all passages.

    ``scores[i, j] = cos(q_i, p_j) / temperature``; the loss is ``CE(scores, arange(n))``.
    With ``symmetric`` it is the mean of that and the passage-to-query term
    ``CE(scores.T, arange(n))``. Inputs already L2-normalised may skip the normalisation.
    """
    if not normalized:
        queries, passages = F.normalize(queries, dim=-1), F.normalize(passages, dim=-1)
    scores = queries.float() @ passages.float().T / temperature
    labels = torch.arange(scores.shape[0], device=scores.device)
    loss = F.cross_entropy(scores, labels)
    if symmetric:
        loss = (loss + F.cross_entropy(scores.T, labels)) / 2
    return loss


def distillation(
    student_other: torch.Tensor, student_en: torch.Tensor, teacher_en: torch.Tensor
) -> torch.Tensor:
    """Squared distance of the student's translation and English vectors to the teacher's
    English vector (Reimers & Gurevych, 2020), summed over dims, averaged over pairs.

    On unit vectors each term is ``2 - 2 cos``, so 0 means the student maps the translation
    exactly where the frozen base model puts the English sentence."""
    target = teacher_en.detach().float()
    other = (student_other.float() - target).pow(2).sum(-1).mean()
    return other + (student_en.float() - target).pow(2).sum(-1).mean()
