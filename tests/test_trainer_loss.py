"""InfoNCE against a hand computation on a 3x3 example."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.losses import info_nce

Q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.28, 0.96]])
P = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
# cosine scores S[i][j] = q_i . p_j (all unit vectors)
S = [[1.0, 0.6, 0.0], [0.0, 0.8, 1.0], [0.28, 0.936, 0.96]]


def hand(scores, t):
    """-(1/n) sum_i log(exp(s_ii/t) / sum_j exp(s_ij/t))"""
    total = 0.0
    for i, row in enumerate(scores):
        total += -(row[i] / t - math.log(sum(math.exp(s / t) for s in row)))
    return total / len(scores)


def test_matches_hand_computation():
    for t in (0.05, 0.5, 1.0):
        assert info_nce(Q, P, temperature=t).item() == pytest.approx(hand(S, t), rel=1e-5)
    # t=1 written out: row 0: -(1 - log(e^1 + e^.6 + e^0)), etc.
    by_hand = (
        -(1.0 - math.log(math.e + math.exp(0.6) + 1))
        - (0.8 - math.log(1 + math.exp(0.8) + math.e))
        - (0.96 - math.log(math.exp(0.28) + math.exp(0.936) + math.exp(0.96)))
    ) / 3
    assert info_nce(Q, P, temperature=1.0).item() == pytest.approx(by_hand, rel=1e-6)
    assert by_hand == pytest.approx(0.8679, abs=1e-3)


def test_symmetric_adds_the_passage_to_query_term():
    transposed = [list(col) for col in zip(*S, strict=True)]
    for t in (0.05, 0.5):
        want = (hand(S, t) + hand(transposed, t)) / 2
        got = info_nce(Q, P, temperature=t, symmetric=True).item()
        assert got == pytest.approx(want, rel=1e-5)
    assert got != pytest.approx(hand(S, 0.5), rel=1e-3)  # the extra term matters


def test_scores_are_cosine_when_not_normalised():
    got = info_nce(3 * Q, 0.5 * P, temperature=0.1, normalized=False).item()
    assert got == pytest.approx(hand(S, 0.1), rel=1e-5)


def test_perfect_separation_gives_small_loss_and_gradients_flow():
    q = torch.eye(3, requires_grad=True)
    loss = info_nce(q, torch.eye(3), temperature=0.05)
    assert loss.item() < 1e-6
    loss = info_nce(q, torch.eye(3).flip(0), temperature=0.05)
    loss.backward()
    assert loss.item() > 10 and q.grad.abs().sum() > 0
