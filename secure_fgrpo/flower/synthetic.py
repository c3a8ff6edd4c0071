"""A node's stand-in contribution ``[e·Δ, e]`` for transport runs, from its own node config.

Deterministic in (seed, round, dim) so a test or benchmark can recompute every node's input and
check the sum that crossed the processes; scaled inside the spec's bounds.
"""

from __future__ import annotations

import numpy as np

from ..secure_sum.base import SumSpec


def synthetic_input(seed: int, spec: SumSpec) -> np.ndarray:
    rng = np.random.default_rng([int(seed), int(spec.round), int(spec.dim)])
    data = rng.normal(size=spec.dim - 1)
    data *= 0.5 * spec.data_bound / max(float(np.linalg.norm(data)), 1e-12)
    weight = rng.uniform(0.25, 1.0) * spec.weight_bound
    return np.concatenate([data, [weight]])
