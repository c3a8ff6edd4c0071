"""GRPO advantages and policy loss against numbers worked out by hand (TRL's formulas)."""

from __future__ import annotations

import math

import pytest
import torch

from secure_fgrpo.grpo.advantages import group_advantages, informative_groups
from secure_fgrpo.grpo.loss import LossConfig, policy_loss

torch.set_num_threads(1)
F64 = torch.float64
EPS = 1e-4  # TRL's std epsilon


def t(x: list) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


# ----------------------------------------------------------------------------- advantages
# Three groups of G=3: a spread group, a constant group, a skewed group.
REWARDS = [1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 1.0, 1.0, 4.0]
# Group means: 2, 0, 2. Centred rewards:
CENTRED = [-1.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0, -1.0, 2.0]
# Unbiased (Bessel) group stds: sqrt(2/2) = 1, 0, sqrt((1+1+4)/2) = sqrt(3).
GROUP_STD = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, math.sqrt(3), math.sqrt(3), math.sqrt(3)]
# Batch: mean 12/9, sum of squares 32, so sum of squared deviations 32 - 9*(4/3)^2 = 16,
# unbiased variance 16/8 = 2.
BATCH_STD = math.sqrt(2.0)


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        ("group", [c / (s + EPS) for c, s in zip(CENTRED, GROUP_STD, strict=True)]),
        ("batch", [c / (BATCH_STD + EPS) for c in CENTRED]),
        ("none", CENTRED),
    ],
)
def test_group_advantages_hand_example(scale: str, expected: list[float]) -> None:
    adv = group_advantages(t(REWARDS), group_size=3, scale=scale)  # type: ignore[arg-type]
    assert adv.shape == (9,)
    assert not torch.isnan(adv).any()
    torch.testing.assert_close(adv, t(expected), rtol=0, atol=1e-12)
    assert adv[3:6].tolist() == [0.0, 0.0, 0.0]  # the constant group carries no signal


def test_group_std_is_unbiased_not_population() -> None:
    # Population std of [1, 3] is 1, unbiased is sqrt(2): TRL (nanstd) uses the latter.
    adv = group_advantages(t([1.0, 3.0]), group_size=2)
    torch.testing.assert_close(adv, t([-1 / (math.sqrt(2) + EPS), 1 / (math.sqrt(2) + EPS)]))


def test_custom_eps_is_used() -> None:
    adv = group_advantages(t([1.0, 3.0]), group_size=2, eps=0.5)
    torch.testing.assert_close(adv, t([-1 / (math.sqrt(2) + 0.5), 1 / (math.sqrt(2) + 0.5)]))


def test_constant_group_with_inexact_mean_is_exactly_zero() -> None:
    # 0.1 * 3 / 3 != 0.1 in binary floating point; the advantage must still be exactly 0.
    adv = group_advantages(t([0.1, 0.1, 0.1, 0.0, 1.0, 0.0]), group_size=3)
    assert adv[:3].tolist() == [0.0, 0.0, 0.0]
    assert adv[4].item() > 0


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_single_sample_groups_give_zero_not_nan(scale: str) -> None:
    adv = group_advantages(t([5.0, -2.0]), group_size=1, scale=scale)  # type: ignore[arg-type]
    assert adv.tolist() == [0.0, 0.0]
    adv1 = group_advantages(t([5.0]), group_size=1, scale=scale)  # type: ignore[arg-type]
    assert adv1.tolist() == [0.0]


def test_informative_groups() -> None:
    assert informative_groups(t(REWARDS), 3).tolist() == [True, False, True]
    assert informative_groups(t([0.1, 0.1, 0.1, 0.3, 0.1, 0.1]), 3).tolist() == [False, True]
    assert informative_groups(t([7.0, 7.0]), 1).tolist() == [False, False]


@pytest.mark.parametrize(
    ("rewards", "group_size", "match"),
    [
        (t([1.0, 2.0, 3.0]), 2, "group_size=2"),
        (t([1.0, 2.0]), 0, "group_size"),
        (t([[1.0, 2.0]]), 2, "rewards must be a 1-D"),
        (t([1.0, float("nan")]), 2, "rewards must be finite"),
        (t([]), 1, "rewards has 0"),
    ],
)
def test_advantage_input_errors(rewards: torch.Tensor, group_size: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        group_advantages(rewards, group_size)
    with pytest.raises(ValueError, match=match):
        informative_groups(rewards, group_size)


def test_bad_scale_and_eps() -> None:
    with pytest.raises(ValueError, match="scale"):
        group_advantages(t([1.0, 2.0]), 2, scale="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        group_advantages(t([1.0, 2.0]), 2, eps=0.0)


# ----------------------------------------------------------------------------- loss
# Two sequences, T = 3; sequence 1 has one padding position. eps_low=0.2, eps_high=0.28,
# so the trust region is [0.8, 1.28].
#   seq 0, A = +1, ratios 1.5 | 0.5 | 1.2
#     1.5: min(1.5, 1.28) = 1.28 -> loss -1.28 (high-clipped)
#     0.5: min(0.5, 0.8)  = 0.5  -> loss -0.5  (below the region but A > 0: not clipped)
#     1.2: inside               -> loss -1.2
#   seq 1, A = -2, ratios 0.5 | 1.5 | pad
#     0.5: min(-1.0, -1.6) = -1.6 -> loss 1.6 (low-clipped)
#     1.5: min(-3.0, -2.56) = -3  -> loss 3.0 (above the region but A < 0: not clipped)
OLD = [[-1.0, -2.0, -0.5], [-0.7, -1.3, -0.2]]
RATIOS = [[1.5, 0.5, 1.2], [0.5, 1.5, 1.0]]
ADV = [1.0, -2.0]
MASK = [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]
TOK_LOSS = [[-1.28, -0.5, -1.2], [1.6, 3.0, 0.0]]
SEQ_SUM = [-1.28 - 0.5 - 1.2, 1.6 + 3.0]  # [-2.98, 4.6]
N_TOK = 5


def _logps(pad_value: float = 7.0) -> torch.Tensor:
    lp = [[o + math.log(r) for o, r in zip(orow, rrow, strict=True)] for orow, rrow in zip(OLD, RATIOS, strict=True)]
    lp[1][2] = pad_value  # garbage at padding: must not matter
    return t(lp).requires_grad_(True)


HAND_LOSS = {
    "grpo": (SEQ_SUM[0] / 3 + SEQ_SUM[1] / 2) / 2,
    "dr_grpo": (SEQ_SUM[0] + SEQ_SUM[1]) / (2 * 4),  # max_completion_length = 4
    "dapo": (SEQ_SUM[0] + SEQ_SUM[1]) / N_TOK,
}
# Per-token weight w such that loss = sum w * token_loss.
WEIGHTS = {
    "grpo": [[1 / (2 * 3)] * 3, [1 / (2 * 2)] * 2 + [0.0]],
    "dr_grpo": [[1 / 8] * 3, [1 / 8] * 2 + [0.0]],
    "dapo": [[1 / 5] * 3, [1 / 5] * 2 + [0.0]],
}


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_clipped_loss_hand_example(loss_type: str) -> None:
    cfg = LossConfig(loss_type=loss_type, max_completion_length=4)  # type: ignore[arg-type]
    logps = _logps()
    out = policy_loss(logps, t(OLD), t(ADV), t(MASK), cfg)
    assert out.loss.item() == pytest.approx(HAND_LOSS[loss_type], abs=1e-12)
    assert out.metrics["clip_fraction/low"] == pytest.approx(1 / 5)
    assert out.metrics["clip_fraction/high"] == pytest.approx(1 / 5)
    assert out.metrics["clip_fraction/region"] == pytest.approx(2 / 5)
    assert out.metrics["ratio_mean"] == pytest.approx((1.5 + 0.5 + 1.2 + 0.5 + 1.5) / 5)
    assert out.metrics["kl"] == 0.0

    # Gradient: clipped tokens get none; an unclipped token gets -A * ratio * weight.
    out.loss.backward()
    w = WEIGHTS[loss_type]
    expected = [
        [0.0, -1.0 * 0.5 * w[0][1], -1.0 * 1.2 * w[0][2]],
        [0.0, 2.0 * 1.5 * w[1][1], 0.0],
    ]
    torch.testing.assert_close(logps.grad, t(expected), rtol=0, atol=1e-12)


def test_bool_mask_and_nan_padding_match_float_mask() -> None:
    cfg = LossConfig(loss_type="grpo")
    ref = policy_loss(_logps(), t(OLD), t(ADV), t(MASK), cfg).loss.item()
    logps = _logps(pad_value=float("nan"))
    out = policy_loss(logps, t(OLD), t(ADV), t(MASK).bool(), cfg)
    assert out.loss.item() == pytest.approx(ref, abs=1e-12)
    out.loss.backward()
    assert torch.isfinite(logps.grad).all()
    assert logps.grad[1, 2].item() == 0.0


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_kl_term_hand_example(loss_type: str) -> None:
    # ref - logps per token: seq 0 [0, ln 2, -ln 2], seq 1 [ln 3, 0, pad]
    # k3 = e^d - d - 1: 0, 1 - ln 2, 0.5 + ln 2 - 1, 2 - ln 3, 0
    beta = 0.1
    cfg = LossConfig(loss_type=loss_type, beta=beta, max_completion_length=4)  # type: ignore[arg-type]
    logps = _logps()
    d = [[0.0, math.log(2), -math.log(2)], [math.log(3), 0.0, 123.0]]
    rows = zip(logps.tolist(), d, strict=True)
    ref = t([[lp + dd for lp, dd in zip(lrow, drow, strict=True)] for lrow, drow in rows])
    k3 = [[0.0, 1 - math.log(2), math.log(2) - 0.5], [2 - math.log(3), 0.0, 0.0]]
    tok = [[TOK_LOSS[i][j] + beta * k3[i][j] for j in range(3)] for i in range(2)]
    if loss_type == "grpo":
        hand = (sum(tok[0]) / 3 + sum(tok[1][:2]) / 2) / 2
    elif loss_type == "dr_grpo":
        hand = (sum(tok[0]) + sum(tok[1][:2])) / 8
    else:
        hand = (sum(tok[0]) + sum(tok[1][:2])) / 5
    out = policy_loss(logps, t(OLD), t(ADV), t(MASK), cfg, ref_logps=ref)
    assert out.loss.item() == pytest.approx(hand, abs=1e-12)
    kl_mean = (k3[0][0] + k3[0][1] + k3[0][2] + k3[1][0] + k3[1][1]) / 5
    assert out.metrics["kl"] == pytest.approx(kl_mean, abs=1e-12)


@pytest.mark.parametrize("loss_type", ["grpo", "dr_grpo", "dapo"])
def test_on_policy_gradient_is_minus_advantage_times_weight(loss_type: str) -> None:
    # ratio == 1 everywhere, beta = 0: d loss / d logps[n, t] = -A_n * w[n, t].
    cfg = LossConfig(loss_type=loss_type, max_completion_length=4)  # type: ignore[arg-type]
    logps = t([[-0.3, -1.1, -2.0], [-0.9, -0.4, 0.0]]).requires_grad_(True)
    adv = [0.5, -1.5]
    out = policy_loss(logps, logps.detach().clone(), t(adv), t(MASK), cfg)
    out.loss.backward()
    w = WEIGHTS[loss_type]
    expected = [[-adv[n] * w[n][j] for j in range(3)] for n in range(2)]
    torch.testing.assert_close(logps.grad, t(expected), rtol=0, atol=1e-12)
    assert out.metrics["ratio_mean"] == pytest.approx(1.0)
    assert out.metrics["clip_fraction/region"] == 0.0


def test_old_and_ref_logps_get_no_gradient() -> None:
    cfg = LossConfig(beta=0.1)
    old = t(OLD).requires_grad_(True)
    ref = t(OLD).requires_grad_(True)
    policy_loss(_logps(), old, t(ADV), t(MASK), cfg, ref_logps=ref).loss.backward()
    assert old.grad is None and ref.grad is None


def test_all_padding_sequence_does_not_divide_by_zero() -> None:
    mask = t([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    out = policy_loss(_logps(), t(OLD), t(ADV), mask, LossConfig(loss_type="grpo"))
    assert out.loss.item() == pytest.approx(SEQ_SUM[0] / 3 / 2, abs=1e-12)


def test_missing_ref_logps_with_beta() -> None:
    with pytest.raises(ValueError, match="ref_logps"):
        policy_loss(_logps(), t(OLD), t(ADV), t(MASK), LossConfig(beta=0.04))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("old_logps", {"old_logps": t([[0.0, 0.0]] * 2)}),
        ("mask", {"mask": t([[1.0, 1.0, 1.0]])}),
        ("advantages", {"advantages": t([1.0, 2.0, 3.0])}),
        ("ref_logps", {"ref_logps": t([[0.0] * 4] * 2)}),
        ("logps", {"logps": t([0.0, 0.0, 0.0])}),
    ],
)
def test_shape_mismatch_names_the_tensor(name: str, kwargs: dict) -> None:
    args = {"logps": _logps(), "old_logps": t(OLD), "advantages": t(ADV), "mask": t(MASK)}
    args["ref_logps"] = t(OLD)
    args.update(kwargs)
    with pytest.raises(ValueError, match=rf"^{name} "):
        policy_loss(cfg=LossConfig(beta=0.1), **args)


def test_non_binary_mask_rejected() -> None:
    with pytest.raises(ValueError, match="mask"):
        policy_loss(_logps(), t(OLD), t(ADV), t([[1.0, 0.5, 1.0], [1.0, 1.0, 0.0]]), LossConfig())


def test_dr_grpo_rejects_completions_longer_than_its_normaliser() -> None:
    with pytest.raises(ValueError, match="max_completion_length"):
        cfg = LossConfig(loss_type="dr_grpo", max_completion_length=2)
        policy_loss(_logps(), t(OLD), t(ADV), t(MASK), cfg)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"loss_type": "bnpo"}, "loss_type"),
        ({"epsilon_low": 1.0}, "epsilon_low"),
        ({"epsilon_high": -0.1}, "epsilon_high"),
        ({"beta": -1.0}, "beta"),
        ({"max_completion_length": 0}, "max_completion_length"),
    ],
)
def test_loss_config_validation(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LossConfig(**kwargs)
