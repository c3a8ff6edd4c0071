"""The public per-round rules every side derives from the federation config, each in one home:
how many take part (k), the secure sum's threshold (t) and the box ``[e·Δ, e]`` lives in.

The server (federation/server.py, federation/coordinator.py), every party when it checks stage 0
(federation/party.py) and the privacy plans that calibrate noise for k and t (privacy/plan.py)
all read them here, so none can drift from the others."""

from __future__ import annotations

import math
from typing import Any

MIN_TO_SUM = 2  # a round with fewer inputs releases nothing: one input alone would be its own sum


def participants_per_round(run: Any) -> int:
    """k: federation.fraction of the clients, at least MIN_TO_SUM (never more than there are)."""
    n = len(run.clients)
    return min(n, max(MIN_TO_SUM, round(run.federation.fraction * n)))


def threshold_for(run: Any, participants: int) -> int:
    """t for a round of ``participants``: secure_sum.threshold of them, rounded up, at least 1."""
    return max(1, math.ceil(run.secure_sum.threshold * participants))


def sum_bounds(run: Any) -> tuple[float, float]:
    """(data_bound, weight_bound) of ``[e·Δ, e]``: e_max (gain.py, a public cap) times the L2
    clip C = federation.delta_clip, and e_max."""
    e_max = float(run.weight_bound)
    return e_max * run.federation.delta_clip, e_max
