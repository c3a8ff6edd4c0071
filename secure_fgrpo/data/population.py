"""A simulated population of many clients, described by a few numbers instead of a list.

Why: a privacy-utility study needs hundreds to thousands of clients, and nobody writes 1,000
``[[clients]]`` tables. ``[population]`` gives the size, the Dirichlet α over task families
and a long-tailed (log-normal) spread of training-set sizes; each client's share is then a pure
function of (seed, name), so it can be drawn when the client is sampled and forgotten after:
memory follows the sampled clients, not the population.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from ..seeding import derive_seed
from ..tasks import GENERATED_FAMILIES, Problem, normalise_mix
from .partition import ClientData, draw_problems


@dataclass(frozen=True)
class PopulationConfig:
    """``[population]``: ``size`` generated clients named ``{prefix}0000``..; each draws its family
    mix from Dirichlet(``alpha``) and ``data.train_size`` is the largest training set; sizes are
    log-normal with median ``median_size`` and shape ``size_sigma`` (0: every client the median),
    clipped to [``min_size``, data.train_size]."""

    size: int = 100
    alpha: float = 0.5
    median_size: int = 32
    size_sigma: float = 1.0
    min_size: int = 4
    prefix: str = "site"

    def __post_init__(self) -> None:
        if self.size < 2:
            raise ValueError(f"population.size must be >= 2, got {self.size}")
        if not (self.alpha > 0 and math.isfinite(self.alpha)):
            raise ValueError(f"population.alpha must be finite and > 0, got {self.alpha}")
        if not 1 <= self.min_size <= self.median_size:
            raise ValueError(f"population.min_size must be in [1, median_size = {self.median_size}], "
                             f"got {self.min_size}")
        if not (self.size_sigma >= 0 and math.isfinite(self.size_sigma)):
            raise ValueError(f"population.size_sigma must be finite and >= 0, got {self.size_sigma}")
        if not self.prefix or "/" in self.prefix or self.prefix.startswith("."):
            raise ValueError(f"population.prefix {self.prefix!r} must be a plain folder-name prefix")

    def names(self) -> list[str]:
        width = max(4, len(str(self.size - 1)))
        return [f"{self.prefix}{i:0{width}d}" for i in range(self.size)]


def client_mix(pop: PopulationConfig, name: str, seed: int) -> dict[str, float]:
    """One client's Dirichlet(α) mix over the generated families, from (seed, name) alone."""
    gen = np.random.default_rng(derive_seed(seed, "population-mix", name))
    shares = gen.dirichlet([pop.alpha] * len(GENERATED_FAMILIES))
    return normalise_mix({f: float(s) for f, s in zip(GENERATED_FAMILIES, shares, strict=False)})


def client_size(pop: PopulationConfig, name: str, seed: int, largest: int) -> int:
    """One client's training-set size: log-normal around the median (a long tail of small
    clients and a few large ones), clipped to [min_size, largest]."""
    rng = random.Random(derive_seed(seed, "population-size", name))
    size = round(pop.median_size * math.exp(pop.size_sigma * rng.gauss(0.0, 1.0)))
    return max(pop.min_size, min(largest, size))


def client_data(pop: PopulationConfig, name: str, seed: int, largest: int, eval_size: int) -> ClientData:
    """A client's train (train space) and held-out (held-out space) problems, deterministic in
    (seed, name): the same whenever and however often it is drawn."""
    mix = client_mix(pop, name, seed)
    rng = random.Random(derive_seed(seed, "population-data", name))
    train = draw_problems(mix, client_size(pop, name, seed, largest), rng, None, f"train of {name!r}", "train")
    held: list[Problem] = draw_problems(mix, eval_size, rng, set(), f"eval of {name!r}", "held_out")
    return ClientData(name=name, mix=mix, train=train, eval=held)
