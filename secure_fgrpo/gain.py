"""Relative performance gain (FGRPO) and the aggregation weight e_i.

Every strategy is only "how a client computes e_i"; the server always computes
Σ e_i·Δ_i / Σ e_i from a secure sum. All state here stays at the client.

    b^t = β·b^{t-1} + (1-β)·r^t                    historical baseline (EMA)
    s^t = β·s^{t-1} + (1-β)·|r^t - b^{t-1}|        its typical deviation
    g^t = clip((r^t - b^{t-1}) / (s^{t-1} + ε), -G, G),   g^1 = 0       ("zscore")
    g^t = clip((r^t - b^{t-1}) / (|b^{t-1}| + ε), -G, G)                  ("ratio")
    e   = n^α · exp(g/τ)   (FGRPO);  e = n (FedAvg);  e = 1 (uniform)

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
Strategy = Literal["fgrpo", "fedavg", "uniform"]
STRATEGIES = ("fgrpo", "fedavg", "uniform")
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

    def __post_init__(self) -> None:
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


def relative_gain(state: GainState, reward: float, reward_spread: float, cfg: GainConfig) -> tuple[float, GainState]:
    """Gain of this round's mean reward against the client's own history, and the new state."""
    if state.baseline is None:
        return 0.0, GainState(baseline=reward, deviation=max(reward_spread, 0.0), rounds=1)
    diff = reward - state.baseline
    scale = state.deviation if cfg.kind == "zscore" else abs(state.baseline)
    gain = max(-cfg.clip, min(cfg.clip, diff / (scale + cfg.eps)))
    new = GainState(
        baseline=cfg.beta * state.baseline + (1 - cfg.beta) * reward,
        deviation=cfg.beta * state.deviation + (1 - cfg.beta) * abs(diff),
        rounds=state.rounds + 1,
    )
    return gain, new


def count_kind(strategy: Strategy, cfg: GainConfig) -> Literal["dataset", "informative_groups"]:
    """What n_i counts once "auto" is resolved (module docstring)."""
    if cfg.count != "auto":
        return cfg.count
    return "dataset" if strategy == "fedavg" else "informative_groups"


def weight(strategy: Strategy, count: int, gain: float, cfg: GainConfig) -> float:
    """e_i for a strategy, from the client's count n_i and gain g_i."""
    if strategy == "fgrpo":
        return float(count) ** cfg.alpha * math.exp(gain / cfg.tau)
    if strategy == "fedavg":
        return float(count)
    if strategy == "uniform":
        return 1.0
    raise ValueError(f"federation.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")


def uses_rewards(strategy: Strategy) -> bool:
    """Whether e_i depends on the round's rewards (through the gain). FedAvg needs only n_i, and
    uniform nothing: under example-level DP only FGRPO pays for a release of reward statistics."""
    return strategy == "fgrpo"


def weight_bound(strategy: Strategy, max_count: int, cfg: GainConfig) -> float:
    """The largest e_i any client can send: fixed-point backends size their range from it."""
    return weight(strategy, max_count, cfg.clip, cfg)
