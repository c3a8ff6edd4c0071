"""GRPO loss diagnostics at the edges the hand example in test_grpo_math.py does not reach: a
ratio between 1+ε_low and 1+ε_high (only ε_high decides the high clip), and a zero advantage
(never clipped, TRL counts low clips only where A < 0 and high clips only where A > 0)."""

from __future__ import annotations

import pytest
import torch

from secure_fgrpo.grpo.loss import LossConfig, policy_loss

F64 = torch.float64


def test_clip_metrics_use_each_epsilon_and_the_advantage_sign() -> None:
    # ε_low = 0.2, ε_high = 0.28: trust region [0.8, 1.28]. Three sequences, two tokens each.
    #   A = +1, ratios 1.25 | 1.30 : 1.25 inside (it is above 1 + ε_low), 1.30 high-clipped
    #   A =  0, ratios 0.50 | 1.50 : outside the region but A = 0: neither low nor high
    #   A = -1, ratios 0.75 | 0.85 : 0.75 low-clipped, 0.85 inside
    # token losses -min(rA, clip(r)A): -1.25, -1.28 | 0, 0 | 0.8, 0.85 ; dapo: sum / 6 = -0.88 / 6
    ratios = [[1.25, 1.30], [0.50, 1.50], [0.75, 0.85]]
    old = torch.tensor([[-1.0, -0.5], [-2.0, -0.3], [-0.7, -1.1]], dtype=F64)
    logps = (old + torch.tensor(ratios, dtype=F64).log()).requires_grad_(True)
    adv = torch.tensor([1.0, 0.0, -1.0], dtype=F64)
    out = policy_loss(logps, old, adv, torch.ones(3, 2, dtype=F64), LossConfig(loss_type="dapo"))
    assert out.loss.item() == pytest.approx(-0.88 / 6, abs=1e-12)
    assert out.metrics["clip_fraction/high"] == pytest.approx(1 / 6)
    assert out.metrics["clip_fraction/low"] == pytest.approx(1 / 6)
    assert out.metrics["clip_fraction/region"] == pytest.approx(2 / 6)
    assert out.metrics["ratio_mean"] == pytest.approx(6.15 / 6)
    # Gradient -A·r/6 on unclipped tokens only: (-1.25/6, 0 | 0, 0 | 0, 0.85/6)
    out.loss.backward()
    expected = torch.tensor([[-1.25 / 6, 0.0], [0.0, 0.0], [0.0, 0.85 / 6]], dtype=F64)
    torch.testing.assert_close(logps.grad, expected, rtol=0, atol=1e-12)
