"""PubSwap's public prompt set: what every institution holds, and nothing anyone trains on.

Why it is a pure function of the shared config: every party, the coordinator and the tests must
agree on the same prompts without exchanging them (stage 0 already checks the config digest).
The prompts come from the task families the config names, in the train space (so never a
held-out evaluation prompt, tasks/heldout.py); every client's training pool then drops them
(``exclude_public``), so the set is disjoint from all training prompts too, and the PubSwap
steps are the only place a public prompt is learned from.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from ..config import RunConfig
from ..data.partition import ClientData, FederatedData, draw_problems
from ..seeding import derive_seed
from ..tasks import GENERATED_FAMILIES
from ..tasks.base import Problem
from ..tasks.heldout import in_held_out_space

log = logging.getLogger(__name__)
SET_FACTOR = 4  # the public set holds SET_FACTOR x pubswap.prompts prompts; each exchange uses a sample


@dataclass(frozen=True)
class PublicSet:
    problems: tuple[Problem, ...]

    @property
    def prompts(self) -> frozenset[str]:
        return frozenset(p.prompt for p in self.problems)

    def exchange(self, cfg: RunConfig, round_: int) -> list[int]:
        """The indices of the public prompts exchanged at the end of ``round_`` (public, seeded)."""
        rng = random.Random(derive_seed(cfg.seed, "pubswap-exchange", round_))
        return sorted(rng.sample(range(len(self.problems)), min(cfg.pubswap.prompts, len(self.problems))))


def is_exchange_round(cfg: RunConfig, round_: int) -> bool:
    """Rounds 1, 1 + every, 1 + 2·every, ...: the round whose end seals offers."""
    return (round_ - 1) % cfg.pubswap.every == 0


def public_families(cfg: RunConfig) -> dict[str, float]:
    """The families the config trains on (uniform): the explicit mixes, or the generated
    families a family/dirichlet partition draws from."""
    if cfg.data.partition != "explicit":
        names = set(GENERATED_FAMILIES)
    else:
        names = {f for c in cfg.clients if not c.data for f, w in c.families.items() if w > 0}
    if not names:
        raise ValueError("pubswap.enabled: no client names task families to draw the public prompts from "
                         "(every client trains on its own file); give one client `families`")
    return {n: 1.0 / len(names) for n in sorted(names)}


def public_set(cfg: RunConfig) -> PublicSet:
    """SET_FACTOR x pubswap.prompts distinct prompts from the config's families, drawn from the
    train space with a public seed derived from ``cfg.seed``."""
    size = SET_FACTOR * cfg.pubswap.prompts
    rng = random.Random(derive_seed(cfg.seed, "pubswap-public-set"))
    problems = draw_problems(public_families(cfg), size, rng, set(), "pubswap public set", "train")
    problems.sort(key=lambda p: (p.family, p.prompt))  # one order for every party
    assert not any(in_held_out_space(p.prompt) for p in problems)
    return PublicSet(tuple(problems))


def exclude_public(fed: FederatedData, public: PublicSet) -> FederatedData:
    """Drop the public prompts from every client's training pool and held-out split and from the
    global held-out set, so that no client trains on them privately and no evaluation scores
    them. Generated held-out prompts never meet them (other space); counts go to the log."""
    prompts = public.prompts
    for name, data in list(fed.clients.items()):
        train = [p for p in data.train if p.prompt not in prompts]
        evals = [p for p in data.eval if p.prompt not in prompts]
        if len(train) != len(data.train) or len(evals) != len(data.eval):
            log.info("client %s: %d training and %d held-out row(s) are public PubSwap prompts: left out",
                     name, len(data.train) - len(train), len(data.eval) - len(evals))
        if not train:
            raise ValueError(f"clients.{name}: every training prompt is a public PubSwap prompt")
        fed.clients[name] = ClientData(data.name, data.mix, train, evals)
    fed.global_eval = [p for p in fed.global_eval if p.prompt not in prompts]
    return fed
