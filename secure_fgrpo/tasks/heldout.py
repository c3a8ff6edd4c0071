"""The held-out space: a fixed, public slice of every generated family's prompts that nothing
trains on — not the embedded model's warm start, not a client's generated training pool — so
held-out accuracy measures generalisation, not recall of prompts the base model was taught.

Membership is a pure function of the prompt string (sha256), so every party, the warm start and
the tests agree on it without sharing state, and a prompt cannot drift between the two sides.
"""

from __future__ import annotations

import hashlib
import random
from typing import Literal

from secure_fgrpo.tasks.base import Problem, TaskFamily

# One prompt in HELD_OUT_ONE_IN is reserved. 5 leaves the smallest family (vitals, 431 prompts)
# ~90 held-out prompts: enough for the default global set (50 per family) and clients' splits.
HELD_OUT_ONE_IN = 5
# Rejection sampling gives up after this many draws for one problem (a family whose whole
# prompt space lies on one side would otherwise loop forever).
_MAX_DRAWS = 10_000

Space = Literal["train", "held_out"]


def in_held_out_space(prompt: str) -> bool:
    """True when ``prompt`` is reserved for evaluation (never trained on)."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % HELD_OUT_ONE_IN == 0


def sample_in_space(family: TaskFamily, rng: random.Random, space: Space) -> Problem:
    """A problem of ``family`` whose prompt lies in ``space`` (rejection sampling from ``rng``)."""
    if space not in ("train", "held_out"):
        raise ValueError(f"space must be 'train' or 'held_out', got {space!r}")
    want = space == "held_out"
    for _ in range(_MAX_DRAWS):
        problem = family.sample(rng)
        if in_held_out_space(problem.prompt) == want:
            return problem
    raise ValueError(f"family {family.name!r}: no {space} prompt in {_MAX_DRAWS} draws")
