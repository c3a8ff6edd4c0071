"""Privacy accounting through Opacus' accountants (RDP or PRV), for Poisson-subsampled Gaussian
mechanisms composed over steps or rounds.

Opacus is imported on first use (seconds): non-private runs never pay for it.
A history is a list of ``(noise_multiplier, sample_rate, steps)`` — Opacus' own format — so the
spend can be recomputed from public parameters alone and needs no state of its own.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

History = Sequence[tuple[float, float, int]]


def epsilon(history: History, delta: float, accountant: str = "rdp") -> float:
    """ε spent by ``history`` at ``delta`` (0 for an empty history)."""
    steps = [(float(z), float(q), int(n)) for z, q, n in history if n > 0]
    if not steps:
        return 0.0
    from opacus.accountants import create_accountant  # heavy import: only when DP is on

    acc = create_accountant(mechanism=accountant)
    acc.history = steps
    with _quiet():
        return float(acc.get_epsilon(delta=delta))


def noise_for(target_epsilon: float, delta: float, sample_rate: float, steps: int,
              accountant: str = "rdp") -> float:
    """The smallest noise multiplier (to Opacus' search tolerance) whose ``steps`` compositions
    at ``sample_rate`` spend at most ``target_epsilon``."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    from opacus.accountants.utils import get_noise_multiplier

    with _quiet():
        return float(get_noise_multiplier(target_epsilon=target_epsilon, target_delta=delta,
                                          sample_rate=sample_rate, steps=steps, accountant=accountant))


@contextmanager
def _quiet() -> Iterator[None]:
    """Opacus warns when the best RDP order is at the end of its grid (the bound is then merely
    looser, i.e. conservative), and PRV takes log(1 - q) at q = 1: neither is actionable here."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.filterwarnings("ignore", message="Optimal order is the")
        yield


class Budget:
    """A fixed mechanism repeated once per unit (a round, or a round's DP-SGD steps), and the
    ε after each count of units; ``affordable(k)`` says whether k units stay within the budget."""

    def __init__(self, noise_multiplier: float, sample_rate: float, steps_per_unit: int,
                 delta: float, accountant: str, limit: float | None) -> None:
        self.noise_multiplier, self.sample_rate = noise_multiplier, sample_rate
        self.steps_per_unit, self.delta, self.accountant = steps_per_unit, delta, accountant
        self.limit = math.inf if limit is None else limit

    def spent(self, units: int) -> float:
        return epsilon([(self.noise_multiplier, self.sample_rate, units * self.steps_per_unit)],
                       self.delta, self.accountant)

    def affordable(self, units: int) -> bool:
        # Calibration searches for ε just below the target: a relative 1e-9 covers float noise only.
        return self.limit == math.inf or self.spent(units) <= self.limit * (1 + 1e-9)
