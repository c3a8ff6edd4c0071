"""NGRPO advantages and the GSPO loss against numbers worked out by hand, the config that
selects them, and the trainer keeping (NGRPO) or dropping (GRPO) the all-wrong groups."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import small_run

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import ConfigError
from secure_fgrpo.data.partition import make_federated_data
from secure_fgrpo.federation.local import TrainJob, run_training
from secure_fgrpo.grpo.advantages import group_advantages, informative_groups, ngrpo_advantages, ngrpo_trainable_groups
from secure_fgrpo.grpo.logprobs import completion_logprobs
from secure_fgrpo.grpo.loss import LossConfig, LossType, policy_loss
from secure_fgrpo.grpo.trainer import Advantage, GRPOConfig, train_round
from secure_fgrpo.model.load import load_base
from secure_fgrpo.model.lora import LoraSpec, attach_lora
from secure_fgrpo.model.vector import VectorLayout, to_vector
from secure_fgrpo.privacy.config import ExampleDPSettings
from secure_fgrpo.rollout import SamplingSpec, make_rollout
from secure_fgrpo.tasks.base import RewardSpec

F64 = torch.float64
EPS = 1e-4  # the std epsilon (TRL's, kept for NGRPO)


def t(x: list) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


# ----------------------------------------------------------------------------- NGRPO advantages
# Reward scale 0..2 (r_max = 2), three groups of G = 3: all wrong, mixed, all right.
REWARDS = [0.0, 0.0, 0.0, 0.0, 2.0, 1.0, 2.0, 2.0, 2.0]
# With the virtual sample r_max = 2 appended to each group (G + 1 = 4 values):
#   [0, 0, 0, 2]: mean 2/4 = 0.5; deviations -0.5 x3, +1.5; squares 0.75 + 2.25 = 3;
#                 Bessel variance 3/3 = 1, std 1.  A = -0.5 / (1 + eps) for each.
#   [0, 2, 1, 2]: mean 5/4 = 1.25; deviations -1.25, 0.75, -0.25, 0.75;
#                 squares 1.5625 + 0.5625 + 0.0625 + 0.5625 = 2.75; variance 2.75/3 = 11/12.
#   [2, 2, 2, 2]: mean 2, deviations 0: advantage exactly 0 (no signal).
STD_B = math.sqrt(11 / 12)
NGRPO_CENTRED = [-0.5, -0.5, -0.5, -1.25, 0.75, -0.25, 0.0, 0.0, 0.0]
NGRPO_GROUP = [-0.5 / (1 + EPS)] * 3 + [c / (STD_B + EPS) for c in (-1.25, 0.75, -0.25)] + [0.0] * 3


@pytest.mark.parametrize(("scale", "expected"), [("group", NGRPO_GROUP), ("none", NGRPO_CENTRED)])
def test_ngrpo_advantages_hand_example(scale: str, expected: list[float]) -> None:
    adv = ngrpo_advantages(t(REWARDS), 3, max_reward=2.0, scale=scale)  # type: ignore[arg-type]
    torch.testing.assert_close(adv, t(expected), rtol=0, atol=1e-12)
    assert adv[6:].tolist() == [0.0, 0.0, 0.0]  # all right: still no signal
    # GRPO on the same rewards: the all-wrong group is silent, the mixed one centred on 1 with std 1.
    grpo = group_advantages(t(REWARDS), 3)
    torch.testing.assert_close(grpo, t([0.0] * 3 + [-1 / (1 + EPS), 1 / (1 + EPS), 0.0] + [0.0] * 3),
                               rtol=0, atol=1e-12)


def test_ngrpo_reproduces_the_papers_case_study() -> None:
    # NGRPO paper, one right answer in a group of 8 (0/1 rewards). GRPO: mean 1/8, Bessel std
    # sqrt((7/64 + 49/64)/7) = sqrt(1/8) = 0.35355: right 0.875/0.35355 = 2.47, wrong -0.35.
    # NGRPO: 9 values with two 1s: mean 2/9; squares 2*(7/9)^2 + 7*(2/9)^2 = 126/81; variance
    # 126/81/8 = 0.19444, std 0.44096: right (7/9)/0.44096 = 1.7638, wrong -(2/9)/0.44096 = -0.5040.
    rewards = t([1.0] + [0.0] * 7)
    ngrpo = ngrpo_advantages(rewards, 8, max_reward=1.0)
    grpo = group_advantages(rewards, 8)
    assert ngrpo[0].item() == pytest.approx(1.76, abs=0.005)
    assert ngrpo[1].item() == pytest.approx(-0.50, abs=0.005)
    assert grpo[0].item() == pytest.approx(2.47, abs=0.005)
    assert grpo[1].item() == pytest.approx(-0.35, abs=0.005)
    std = math.sqrt(126 / 81 / 8)
    assert ngrpo[0].item() == pytest.approx((7 / 9) / (std + EPS), abs=1e-12)


def test_ngrpo_keeps_all_wrong_and_partial_groups_drops_all_right() -> None:
    assert informative_groups(t(REWARDS), 3).tolist() == [False, True, False]
    assert ngrpo_trainable_groups(t(REWARDS), 3, 2.0).tolist() == [True, True, False]
    # A constant group below r_max (partial credit 0.5 of 1) is pushed down as well:
    # [0.5, 0.5, 1]: mean 2/3, deviation -1/6; variance (2/36 + 4/36)/2 = 1/12.
    partial = t([0.5, 0.5])
    assert ngrpo_trainable_groups(partial, 2, 1.0).tolist() == [True]
    adv = ngrpo_advantages(partial, 2, max_reward=1.0)
    torch.testing.assert_close(adv, t([-(1 / 6) / (math.sqrt(1 / 12) + EPS)] * 2), rtol=0, atol=1e-12)
    # r_max is the client's scale: a group of 1s is "all right" on 0..1 but not on 0..10.
    ones = t([1.0, 1.0, 1.0])
    assert ngrpo_trainable_groups(ones, 3, 1.0).tolist() == [False]
    assert ngrpo_trainable_groups(ones, 3, 10.0).tolist() == [True]
    assert ngrpo_advantages(t([0.1, 0.1, 0.1]), 3, max_reward=0.1).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_reward": 0.5}, r"reward 2.0 exceeds max_reward=0.5"),
        ({"max_reward": float("nan")}, "max_reward must be a finite number"),
        ({"max_reward": 2.0, "scale": "batch"}, "scale must be 'group' or 'none'"),
        ({"max_reward": 2.0, "eps": 0.0}, "eps must be > 0"),
    ],
)
def test_ngrpo_input_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ngrpo_advantages(t(REWARDS), 3, **kwargs)


def test_ngrpo_rejects_a_reward_above_max_in_the_filter_too() -> None:
    with pytest.raises(ValueError, match=r"exceeds max_reward=1.0"):
        ngrpo_trainable_groups(t([0.0, 10.0]), 2, 1.0)


# ----------------------------------------------------------------------------- GSPO loss
# Three sequences, T = 3; sequence 1 has one padding position. eps_low = 0.05, eps_high = 0.08,
# so the sequence trust region is [0.95, 1.08]. Per-token log-ratios log(pi/pi_old):
#   seq 0, A = +1.5: 0.3, -0.1, 0.1  -> mean 0.1,   s = e^0.1  = 1.10517 > 1.08: high-clipped,
#                    min(1.5*1.10517, 1.5*1.08) = 1.62, loss -1.62
#   seq 1, A = -0.5: -0.4, 0.2, pad  -> mean -0.1,  s = e^-0.1 = 0.90484 < 0.95: low-clipped,
#                    min(-0.5*0.90484, -0.5*0.95) = -0.475, loss +0.475
#   seq 2, A = +2.0: 0.02, 0.0, 0.04 -> mean 0.02,  s = e^0.02 = 1.0202013400267558 inside,
#                    loss -2 * 1.0202013400267558 = -2.0404026800535116
# gspo = mean over sequences: (-1.62 + 0.475 - 2.0404026800535116) / 3 = -1.0618008933511704.
# (With eps swapped, seq 0 would clip at 1.05 and seq 1 at 0.92: -1.575 and 0.46.)
OLD = [[-1.0, -2.0, -0.5], [-0.7, -1.3, -0.2], [-0.3, -0.9, -1.1]]
LOG_RATIO = [[0.3, -0.1, 0.1], [-0.4, 0.2, 0.0], [0.02, 0.0, 0.04]]
ADV = [1.5, -0.5, 2.0]
MASK = [[1.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
GSPO = LossConfig(loss_type="gspo", epsilon_low=0.05, epsilon_high=0.08)
GSPO_LOSS = -1.0618008933511704


def _logps(pad_value: float = 7.0) -> torch.Tensor:
    lp = [[o + r for o, r in zip(orow, rrow, strict=True)] for orow, rrow in zip(OLD, LOG_RATIO, strict=True)]
    lp[1][2] = pad_value  # garbage at padding: must not matter
    return t(lp).requires_grad_(True)


def test_gspo_loss_hand_example() -> None:
    logps = _logps(pad_value=float("nan"))
    out = policy_loss(logps, t(OLD), t(ADV), t(MASK), GSPO)
    assert out.loss.item() == pytest.approx(GSPO_LOSS, abs=1e-12)
    # Clip fractions count sequences (TRL's sequence-level metric), not tokens: 1/3 each way
    # (a token mean would give 3/8 high and 2/8 low).
    assert out.metrics["clip_fraction/high"] == pytest.approx(1 / 3)
    assert out.metrics["clip_fraction/low"] == pytest.approx(1 / 3)
    assert out.metrics["clip_fraction/region"] == pytest.approx(2 / 3)
    assert out.metrics["ratio_mean"] == pytest.approx((1.1051709180756477 + 0.9048374180359595
                                                      + 1.0202013400267558) / 3, abs=1e-12)
    # Gradient: the clipped sequences get none; seq 2's every token gets
    # d(-A s / N)/d logp_t = -A s / (N |y|) = -2 * 1.0202013400267558 / (3 * 3) = -0.22671140889483463.
    out.loss.backward()
    g = -0.22671140889483463
    torch.testing.assert_close(logps.grad, t([[0.0] * 3, [0.0] * 3, [g] * 3]), rtol=0, atol=1e-12)


def test_gspo_moves_whole_sequences_where_token_clipping_cuts_tokens() -> None:
    # One sequence, A = +1, log-ratios 0.5, -0.5: token ratios 1.65 (clipped at 1.28) and 0.61;
    # the sequence ratio is e^0 = 1, inside. GSPO's gradient reaches both tokens,
    # -A s / |y| = -1/2 each; token-level grpo gives the clipped token none and the other
    # -A r / |y| = -e^-0.5 / 2 = -0.3032653298563167.
    old = t([[-1.0, -1.0]])
    grads = {}
    for kind in ("gspo", "grpo"):
        lp = t([[-0.5, -1.5]]).requires_grad_(True)
        cfg = LossConfig(loss_type=kind)  # type: ignore[arg-type]
        policy_loss(lp, old, t([1.0]), t([[1.0, 1.0]]), cfg).loss.backward()
        grads[kind] = lp.grad
    torch.testing.assert_close(grads["gspo"], t([[-0.5, -0.5]]), rtol=0, atol=1e-12)
    torch.testing.assert_close(grads["grpo"], t([[0.0, -0.3032653298563167]]), rtol=0, atol=1e-12)


def test_gspo_on_policy_trains_exactly_as_grpo() -> None:
    # At mu = 1 (old = logps) every ratio is 1, s_i = 1 too: both give -A_i / (N |y_i|) per token.
    logps = _logps()
    grads = {}
    for kind in ("gspo", "grpo"):
        lp = logps.detach().clone().requires_grad_(True)
        cfg = LossConfig(loss_type=kind, epsilon_low=0.05, epsilon_high=0.08)  # type: ignore[arg-type]
        policy_loss(lp, lp.detach(), t(ADV), t(MASK), cfg).loss.backward()
        grads[kind] = lp.grad
    # seq 0: -1.5/(3*3); seq 1: +0.5/(3*2) on its two tokens; seq 2: -2/(3*3).
    expected = t([[-1.5 / 9] * 3, [0.5 / 6] * 2 + [0.0], [-2 / 9] * 3])
    torch.testing.assert_close(grads["gspo"], expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(grads["grpo"], expected, rtol=0, atol=1e-12)


def test_gspo_kl_term_is_each_sequences_token_mean() -> None:
    # beta = 0.1, ref = logps - 0.2 on every real token: k3 = e^-0.2 + 0.2 - 1 = 0.018730753077981888
    # per token, so every sequence adds 0.1 * 0.018730753077981888 and so does their mean.
    beta, k3 = 0.1, 0.018730753077981888
    cfg = LossConfig(loss_type="gspo", epsilon_low=0.05, epsilon_high=0.08, beta=beta)
    logps = _logps()
    out = policy_loss(logps, t(OLD), t(ADV), t(MASK), cfg, ref_logps=logps.detach() - 0.2)
    assert out.loss.item() == pytest.approx(GSPO_LOSS + beta * k3, abs=1e-12)
    assert out.metrics["kl"] == pytest.approx(k3, abs=1e-12)


def test_gspo_on_an_empty_completion_contributes_nothing() -> None:
    # A row with no completion token: its ratio is e^0 = 1 and its masked mean is 0 (as TRL's).
    out = policy_loss(t([[0.0, 0.0], [-1.0, -1.0]]), t([[0.0, 0.0], [-1.0, -1.0]]), t([3.0, 1.0]),
                      t([[0.0, 0.0], [1.0, 1.0]]), LossConfig(loss_type="gspo"))
    assert out.loss.item() == pytest.approx(-1.0 / 2, abs=1e-12)  # (0 + -1*1) / 2 sequences


# ----------------------------------------------------------------------------- config
def test_variants_are_config_choices() -> None:
    cfg = config_from_dict(small_run(**{"grpo.advantage": "ngrpo", "grpo.loss.loss_type": "gspo",
                                        "grpo.loss.epsilon_low": 3e-4, "grpo.loss.epsilon_high": 4e-4}))
    assert (cfg.grpo.advantage, cfg.grpo.loss.loss_type) == ("ngrpo", "gspo")
    assert config_from_dict(small_run()).grpo.advantage == "grpo"  # the default is unchanged


@pytest.mark.parametrize(
    ("over", "key", "match"),
    [
        ({"grpo.advantage": "psr_nsr"}, "grpo.advantage", "not one of"),
        ({"grpo.loss.loss_type": "gspo_token"}, "grpo.loss.loss_type", "not one of"),
        ({"grpo.advantage": "ngrpo", "grpo.loss.epsilon_high": 0.2}, "grpo.advantage", "asymmetric clipping"),
        ({"grpo.advantage": "ngrpo", "grpo.scale_rewards": "batch"}, "grpo.scale_rewards", "no NGRPO form"),
    ],
)
def test_variant_config_errors_name_the_key(over: dict, key: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        config_from_dict(small_run(**over))
    assert err.value.key == key


# ----------------------------------------------------------------------------- trainer
T = 6


def _model(path: Path):
    base, tok = load_base(str(path))
    return attach_lora(base, LoraSpec(r=4)), tok


def _round(path: Path, advantage: Advantage, reward: float, max_reward: float = 1.0,
           loss_type: LossType = "dapo", dp: ExampleDPSettings | None = None) -> tuple[float, list[float]]:
    """Train one small round with a constant reward; return how far the adapter moved and the
    number of groups trained per step."""
    cfg = GRPOConfig(steps=2, group_size=4, prompts_per_step=4, oversample=6, advantage=advantage,
                     sampling=SamplingSpec(T, 1.0), loss=LossConfig(loss_type=loss_type, max_completion_length=T))
    pool = make_federated_data({"a": {"vitals": 1.0}}, 20, 2, 2, 0).clients["a"].train
    model, tok = _model(path)
    before = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    res = train_round(model, tok, make_rollout("transformers"), pool, lambda *_: reward, cfg, seed=0,
                      max_reward=max_reward, dp=dp)
    after = [p.detach() for p in model.parameters() if p.requires_grad]
    moved = math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(after, before, strict=True)))
    return moved, [s["groups"] for s in res.steps]


def test_ngrpo_trains_on_the_all_wrong_groups_that_grpo_drops(quick_model_dir: Path) -> None:
    moved, groups = _round(quick_model_dir, "grpo", reward=0.0)
    assert (moved, groups) == (0.0, [0.0, 0.0])  # dynamic sampling: nothing to learn from
    moved, groups = _round(quick_model_dir, "ngrpo", reward=0.0)
    assert groups == [4.0, 4.0] and moved > 0.0  # every all-wrong group is a negative example
    moved, groups = _round(quick_model_dir, "ngrpo", reward=1.0)
    assert (moved, groups) == (0.0, [0.0, 0.0])  # all right: still no signal
    moved, groups = _round(quick_model_dir, "ngrpo", reward=1.0, max_reward=10.0)
    assert groups == [4.0, 4.0] and moved > 0.0  # 1 of 10 is not the best score


def test_ngrpo_lowers_the_probability_of_all_wrong_completions(quick_model_dir: Path) -> None:
    """The negative advantages really push the sampled completions down (one on-policy step)."""
    model, tok = _model(quick_model_dir)
    pool = make_federated_data({"a": {"vitals": 1.0}}, 20, 2, 2, 0).clients["a"].train
    batch = make_rollout("transformers").generate(model, tok, [p.prompt for p in pool[:3]], 4,
                                                  SamplingSpec(T, 1.0), 7)
    mask = batch.completion_mask.float()
    adv = ngrpo_advantages(torch.zeros(12), 4, max_reward=1.0)
    assert bool((adv < 0).all())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05)
    with torch.no_grad():
        before = (completion_logprobs(model, batch, 1.0) * mask).sum()
    logps = completion_logprobs(model, batch, 1.0)
    policy_loss(logps, logps.detach(), adv, mask, LossConfig(max_completion_length=T)).loss.backward()
    opt.step()
    with torch.no_grad():
        after = (completion_logprobs(model, batch, 1.0) * mask).sum()
    assert float(after) < float(before)


def test_gspo_round_trains(quick_model_dir: Path) -> None:
    moved, groups = _round(quick_model_dir, "ngrpo", reward=0.0, loss_type="gspo")
    assert groups == [4.0, 4.0] and moved > 0.0


@pytest.mark.parametrize("advantage", ["grpo", "ngrpo"])
def test_private_rounds_train_the_same_groups(quick_model_dir: Path, advantage: Advantage) -> None:
    """Under example-level DP-SGD (per-group clipping through Opacus) GSPO's sequence ratio runs,
    and the all-wrong groups are trained under NGRPO only, as without DP."""
    dp = ExampleDPSettings(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=0.3)
    _, groups = _round(quick_model_dir, advantage, reward=0.0, loss_type="gspo", dp=dp)
    assert (sum(groups) > 0) == (advantage == "ngrpo")


def test_a_client_job_uses_its_own_reward_scale_as_r_max(quick_model_dir: Path) -> None:
    """A 0/10 institution's right answers score 10: with r_max left at 1 NGRPO would refuse them."""
    model, _ = _model(quick_model_dir)
    data = make_federated_data({"b": {"choice": 1.0}}, 20, 4, 4, 0).clients["b"]
    cfg = GRPOConfig(steps=2, group_size=4, prompts_per_step=4, oversample=6, advantage="ngrpo",
                     sampling=SamplingSpec(T, 1.0), loss=LossConfig(max_completion_length=T))
    job = TrainJob(client="b", round=1, model_path=str(quick_model_dir), rollout="transformers",
                   lora=LoraSpec(r=4), global_vector=to_vector(model, VectorLayout.of(model)),
                   pool=data.train, eval_set=data.eval, reward=RewardSpec(scale=10.0), grpo=cfg,
                   eval_sampling=SamplingSpec(T, 1.0), seed=5)
    out = run_training(job)
    assert out.result.mean_reward > 0.0  # some completion scored 10 > 1: the scale reached NGRPO
    assert out.result.groups > 0 and float(abs(out.delta).max()) > 0.0
