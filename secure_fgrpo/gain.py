"""Relative performance gain (FGRPO) and the aggregation weight e_i.

Every strategy is only "how a client computes e_i"; the server always computes
Σ e_i·Δ_i / Σ e_i from a secure sum. All state here stays at the client.

    b^t = β·b^{t-1} + (1-β)·r^t                    historical baseline (EMA)
    s^t = β·s^{t-1} + (1-β)·|r^t - b^{t-1}|        its typical deviation
    g^t = clip((r^t - b^{t-1}) / (s^{t-1} + ε), -G, G),   g^1 = 0       ("zscore")
    g^t = clip((r^t - b^{t-1}) / (|b^{t-1}| + ε), -G, G)                  ("ratio")
    e   = n^α · exp(g/τ)   (FGRPO);  e = n (FedAvg);  e = 1 (uniform)
    e   = n^α · exp(clip(r^t - b^{t-1}, -G, G)/τ)                         ("naive_gain")

"naive_gain" is the baseline FGRPO's normalisation exists to beat: the raw improvement in the
client's own reward units, so a 0/100 client's gains saturate the clip while a 0/1 client's
stay near 0. It is a benchmark baseline (benchmarks/heterogeneity.py), not a recommendation.

Where r^t is measured (``gain.source``): "train", the mean reward of the client's own rollouts
this round (the local model while it trains); or "global", the incoming global adapter's
accuracy on the client's held-out split (``eval_accuracy_of_global``, which each client measures
before it trains): how much the federation's last update helped *this* client. The global source
is in [0, 1] whatever the client's reward scale; its first-round spread is sqrt(p(1-p)), the
per-prompt spread of an accuracy p, the analogue of the train source's per-completion spread.
The default stays "train": on benchmarks/results/heterogeneity.md "global" was never better
(paired −1.1…0.0 points) and rewards the client the federation helped, not the one that helped.

n is the client's *count* (``gain.count``): its local data set size ("dataset", FedAvg as users
know it), or the number of informative groups (prompts whose rewards differ) it trained on this
round ("informative_groups", at most steps × prompts_per_step). "auto" is the data set for FedAvg
and the informative groups for FGRPO: a client whose reference answers are corrupted scores
nearly every completion 0, so few of its groups are informative and it weighs little. A data-set count is clipped to
the public cap ``gain.max_count`` (default data.train_size) so that e_max stays a public bound. Under
example-level DP-SGD n is always the public expected batch steps × q × N (grpo/trainer.py).

s^1 is the spread of the client's first-round rewards: a scale measured in the client's own
reward units, so a 0..10 hospital and a 0..1 hospital get comparable gains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

GainKind = Literal["zscore", "ratio"]
Strategy = Literal["fgrpo", "fedavg", "uniform", "naive_gain"]
STRATEGIES = ("fgrpo", "fedavg", "uniform", "naive_gain")
GainSource = Literal["train", "global"]
SOURCES = ("train", "global")
Count = Literal["auto", "dataset", "informative_groups"]
COUNTS = ("auto", "dataset", "informative_groups")


@dataclass(frozen=True)
class GainConfig:
    kind: GainKind = "zscore"
    beta: float = 0.7
    clip: float = 2.0  # G
    tau: float = 1.0
    alpha: float = 0.5
    eps: float = 1e-6
    count: Count = "auto"  # what n_i is (module docstring)
    max_count: int | None = None  # public cap on a data-set count; None: data.train_size
    source: GainSource = "train"  # where r^t is measured (module docstring)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"gain.source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.count not in COUNTS:
            raise ValueError(f"gain.count must be one of {', '.join(COUNTS)}, got {self.count!r}")
        if self.max_count is not None and not (isinstance(self.max_count, int) and self.max_count >= 1):
            raise ValueError(f"gain.max_count must be an int >= 1, got {self.max_count!r}")
        if self.kind not in ("zscore", "ratio"):
            raise ValueError(f"gain.kind must be 'zscore' or 'ratio', got {self.kind!r}")
        if not 0.0 <= self.beta < 1.0:
            raise ValueError(f"gain.beta must be in [0, 1), got {self.beta}")
        if not self.clip > 0:
            raise ValueError(f"gain.clip must be > 0, got {self.clip}")
        if not self.tau > 0:
            raise ValueError(f"gain.tau must be > 0, got {self.tau}")
        if self.alpha < 0:
            raise ValueError(f"gain.alpha must be >= 0, got {self.alpha}")


@dataclass(frozen=True)
class GainState:
    baseline: float | None = None
    deviation: float = 0.0
    rounds: int = 0


def gain_signal(cfg: GainConfig, mean_reward: float, reward_std: float, global_accuracy: float) -> tuple[float, float]:
    """(r^t, its spread) from the source ``gain.source`` names (module docstring)."""
    if cfg.source == "global":
        p = min(1.0, max(0.0, global_accuracy))
        return p, math.sqrt(p * (1.0 - p))
    return mean_reward, reward_std


def relative_gain(state: GainState, reward: float, reward_spread: float, cfg: GainConfig,
                  normalise: bool = True) -> tuple[float, GainState]:
    """Gain of this round's mean reward against the client's own history, and the new state.
    ``normalise=False`` is the naive raw improvement r - b (strategy "naive_gain")."""
    if state.baseline is None:
        return 0.0, GainState(baseline=reward, deviation=max(reward_spread, 0.0), rounds=1)
    diff = reward - state.baseline
    if not normalise:
        scale, eps = 1.0, 0.0
    else:
        scale, eps = (state.deviation if cfg.kind == "zscore" else abs(state.baseline)), cfg.eps
    gain = max(-cfg.clip, min(cfg.clip, diff / (scale + eps)))
    new = GainState(
        baseline=cfg.beta * state.baseline + (1 - cfg.beta) * reward,
        deviation=cfg.beta * state.deviation + (1 - cfg.beta) * abs(diff),
        rounds=state.rounds + 1,
    )
    return gain, new


def round_gain(strategy: Strategy, state: GainState, mean_reward: float, reward_std: float,
               global_accuracy: float, cfg: GainConfig) -> tuple[float, GainState]:
    """A client's gain g_i this round from its source (``gain.source``) and the new state;
    raw (unnormalised) for "naive_gain"."""
    reward, spread = gain_signal(cfg, mean_reward, reward_std, global_accuracy)
    return relative_gain(state, reward, spread, cfg, normalise=strategy != "naive_gain")


def count_kind(strategy: Strategy, cfg: GainConfig) -> Literal["dataset", "informative_groups"]:
    """What n_i counts once "auto" is resolved (module docstring)."""
    if cfg.count != "auto":
        return cfg.count
    return "dataset" if strategy == "fedavg" else "informative_groups"


def weight(strategy: Strategy, count: int, gain: float, cfg: GainConfig) -> float:
    """e_i for a strategy, from the client's count n_i and gain g_i."""
    if strategy in ("fgrpo", "naive_gain"):
        return float(count) ** cfg.alpha * math.exp(gain / cfg.tau)
    if strategy == "fedavg":
        return float(count)
    if strategy == "uniform":
        return 1.0
    raise ValueError(f"federation.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")


def uses_rewards(strategy: Strategy) -> bool:
    """Whether e_i depends on the round's rewards (through the gain). FedAvg needs only n_i, and
    uniform nothing: under example-level DP only the gain strategies pay for a release of reward statistics."""
    return strategy in ("fgrpo", "naive_gain")


def weight_bound(strategy: Strategy, max_count: int, cfg: GainConfig) -> float:
    """The largest e_i any client can send: fixed-point backends size their range from it."""
    return weight(strategy, max_count, cfg.clip, cfg)
