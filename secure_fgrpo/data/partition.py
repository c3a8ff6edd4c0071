"""Non-IID partitioning: which task families each client sees, and its train/eval problems.

Heterogeneous mixes are what make relative-gain weighting matter. Training prompts come from
the train space and every held-out prompt from the held-out space (tasks/heldout.py), which the
embedded model's warm start never saw either: evaluation measures generalisation.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from secure_fgrpo.tasks import Problem, get_family, normalise_mix, sample_in_space
from secure_fgrpo.tasks.heldout import Space

# Rejection sampling of unseen prompts gives up after this many draws per wanted problem.
_DRAWS_PER_PROBLEM = 50


@dataclass
class ClientData:
    """One institution's share: its family mixture and its private train/eval problems."""

    name: str
    mix: dict[str, float]
    train: list[Problem]
    eval: list[Problem]


@dataclass
class FederatedData:
    """All clients' data plus a global held-out set, uniform over the families in use.
    ``global_eval_parts`` says what the global set is made of (a description per part and its
    number of prompts), so every accuracy printed can say what it was measured on."""

    clients: MutableMapping[str, ClientData]  # a population's builds each client when asked
    global_eval: list[Problem]
    global_eval_parts: dict[str, int] = field(default_factory=dict)

    def describe_global_eval(self) -> str:
        parts = self.global_eval_parts or {"prompts": len(self.global_eval)}
        return " + ".join(f"{n} {what}" for what, n in parts.items())


def family_mixes(
    clients: list[str],
    by: Literal["family", "dirichlet"],
    alpha: float,
    families: list[str],
    seed: int,
    families_per_client: int = 2,
) -> dict[str, dict[str, float]]:
    """Per-client mixture weights over ``families`` (each summing to 1).

    ``"family"``: client k gets ``families_per_client`` consecutive families starting at
    k * families_per_client (round-robin, uniform over them; ``alpha`` and ``seed`` unused).
    ``"dirichlet"``: each client draws Dirichlet(alpha) over all families from a numpy
    Generator seeded with ``seed``; small alpha means skewed, large alpha near uniform.
    """
    if not clients or len(set(clients)) != len(clients):
        raise ValueError(f"clients: need distinct names, got {clients}")
    if not families or len(set(families)) != len(families):
        raise ValueError(f"families: need distinct names, got {families}")
    for name in families:
        get_family(name)
    if by == "family":
        if not 1 <= families_per_client <= len(families):
            raise ValueError(
                f"families_per_client must be in [1, {len(families)}], got {families_per_client}"
            )
        mixes = {}
        for k, client in enumerate(clients):
            start = k * families_per_client
            chosen = [families[(start + j) % len(families)] for j in range(families_per_client)]
            mixes[client] = {name: 1.0 / families_per_client for name in chosen}
        return mixes
    if by == "dirichlet":
        if not alpha > 0 or not np.isfinite(alpha):
            raise ValueError(f"alpha must be finite and > 0, got {alpha}")
        gen = np.random.default_rng(seed)
        mixes = {}
        for client in clients:
            shares = gen.dirichlet([alpha] * len(families))
            shares = shares / shares.sum()
            mixes[client] = {name: float(s) for name, s in zip(families, shares, strict=True)}
        return mixes
    raise ValueError(f"by must be 'family' or 'dirichlet', got {by!r}")


def _allocate(mix: Mapping[str, float], size: int) -> dict[str, int]:
    """Per-family counts summing to ``size``, proportional to ``mix`` (largest remainder)."""
    exact = {name: w * size for name, w in mix.items() if w > 0}
    counts = {name: int(x) for name, x in exact.items()}
    short = size - sum(counts.values())
    by_remainder = sorted(exact, key=lambda name: (-(exact[name] - counts[name]), name))
    for name in by_remainder[:short]:
        counts[name] += 1
    return counts


def draw_problems(
    mix: Mapping[str, float],
    size: int,
    rng: random.Random,
    exclude: set[str] | None,
    what: str,
    space: Space,
) -> list[Problem]:
    """``size`` problems from ``mix`` in ``space``; with ``exclude``, distinct prompts none of
    which is excluded."""
    out: list[Problem] = []
    for name, count in _allocate(mix, size).items():
        family = get_family(name)
        if exclude is None:
            out.extend(sample_in_space(family, rng, space) for _ in range(count))
            continue
        seen: set[str] = set()
        draws = 0
        while len(seen) < count:
            draws += 1
            if draws > _DRAWS_PER_PROBLEM * count + 1000:
                raise ValueError(
                    f"{what}: found only {len(seen)} of {count} distinct held-out {name!r} prompts; "
                    "lower the eval size"
                )
            problem = sample_in_space(family, rng, space)
            if problem.prompt in exclude or problem.prompt in seen:
                continue
            seen.add(problem.prompt)
            out.append(problem)
    rng.shuffle(out)
    return out


def make_federated_data(
    mixes: dict[str, dict[str, float]],
    train_size: int,
    eval_size: int,
    global_eval_size: int,
    seed: int,
) -> FederatedData:
    """Train and held-out eval problems per client, plus a global eval set.

    Per-family counts follow each mix exactly (largest remainder). Training prompts come from the
    train space; every eval prompt (client or global) from the held-out space, distinct within
    its set, so absent from every client's training prompts and from the warm start.
    """
    if not mixes:
        raise ValueError("mixes: need at least one client")
    sizes = {"train_size": train_size, "eval_size": eval_size, "global_eval_size": global_eval_size}
    for name, value in sizes.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    normalised = {}
    for client, mix in mixes.items():
        try:
            normalised[client] = normalise_mix(mix)
        except ValueError as err:
            raise ValueError(f"mix of client {client!r}: {err}") from None
    rng = random.Random(seed)
    train = {c: draw_problems(mix, train_size, rng, None, f"train of {c!r}", "train") for c, mix in normalised.items()}
    seen = {p.prompt for problems in train.values() for p in problems}
    clients = {
        c: ClientData(
            name=c,
            mix=mix,
            train=train[c],
            eval=draw_problems(mix, eval_size, rng, seen, f"eval of {c!r}", "held_out"),
        )
        for c, mix in normalised.items()
    }
    in_use = sorted({name for mix in normalised.values() for name, w in mix.items() if w > 0})
    uniform = {name: 1.0 / len(in_use) for name in in_use}
    global_eval = draw_problems(uniform, global_eval_size, rng, seen, "global eval", "held_out")
    about = f"built-in held-out prompts ({', '.join(in_use)}), never in any client's training"
    return FederatedData(clients=clients, global_eval=global_eval, global_eval_parts={about: len(global_eval)})
