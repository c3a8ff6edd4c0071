"""Parties and their data built when a round needs them, not all at start.

Why: a simulated population of 1,000 clients must cost memory in proportion to the clients a
round samples. Everything a client keeps between rounds (gain history, metrics, its DP budget
as the count of its rounds) is already on disk under ``RUN/clients/<name>/``, and its data is a
pure function of (seed, name) (data/population.py), so a client object can be dropped after its
round and rebuilt, identical, the next time it is sampled. A small federation keeps everyone
(the capacity is at least its size), as before.
"""

from __future__ import annotations

import logging
import random
from collections import OrderedDict
from collections.abc import Callable, Iterator, MutableMapping
from typing import Generic, TypeVar

from ..config import RunConfig
from ..data.partition import ClientData, FederatedData, draw_problems
from ..data.population import PopulationConfig, client_data
from ..seeding import derive_seed
from ..tasks import GENERATED_FAMILIES

log = logging.getLogger(__name__)
V = TypeVar("V")
# Objects kept at most, beyond which the least recently used is dropped (a population only).
MIN_CAPACITY = 256


def capacity(run: RunConfig) -> int:
    """How many clients' objects to keep: everyone in a listed federation; a population keeps a
    few rounds' worth of samples (three times the expected sample, at least MIN_CAPACITY)."""
    n = len(run.clients)
    if run.population is None:
        return n
    return min(n, max(MIN_CAPACITY, 3 * round(run.federation.fraction * n)))


class LazyMap(MutableMapping[str, V], Generic[V]):
    """A mapping over a fixed list of names whose values are built on first access by
    ``build(name)`` and kept in a bounded least-recently-used cache. Iteration and ``len`` cover
    every name (iterating ``values()`` builds each in turn). Setting a key replaces its value."""

    def __init__(self, names: list[str], build: Callable[[str], V], keep: int) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._names, self._known = list(names), set(names)
        self._build, self._keep = build, keep
        self._cache: OrderedDict[str, V] = OrderedDict()
        self.built = 0  # how many objects were built (a benchmark reports it)

    def __getitem__(self, name: str) -> V:
        if name in self._cache:
            self._cache.move_to_end(name)
            return self._cache[name]
        if name not in self._known:
            raise KeyError(name)
        value = self._build(name)
        self.built += 1
        self[name] = value
        return value

    def __setitem__(self, name: str, value: V) -> None:
        if name not in self._known:
            self._names.append(name)
            self._known.add(name)
        self._cache[name] = value
        self._cache.move_to_end(name)
        while len(self._cache) > self._keep:
            self._cache.popitem(last=False)

    def __delitem__(self, name: str) -> None:
        raise TypeError("the clients of a federation are fixed")

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._known

    def cached(self) -> list[V]:
        """The objects held now (at most ``keep``)."""
        return list(self._cache.values())


def population_data(run: RunConfig, pop: PopulationConfig) -> FederatedData:
    """A population's data: each client's share drawn when first asked for, and the built-in
    global held-out set, uniform over every generated family (a Dirichlet mix gives each a share)."""
    d = run.data
    names = [c.name for c in run.clients]
    clients: LazyMap[ClientData] = LazyMap(
        names, lambda n: client_data(pop, n, run.seed, d.train_size, d.eval_size), capacity(run))
    rng = random.Random(derive_seed(run.seed, "population-global-eval"))
    uniform = {f: 1.0 / len(GENERATED_FAMILIES) for f in GENERATED_FAMILIES}
    global_eval = draw_problems(uniform, d.global_eval_size, rng, set(), "global eval", "held_out")
    about = (f"built-in held-out prompts ({', '.join(GENERATED_FAMILIES)}), never in any client's training "
             f"(population of {pop.size})")
    return FederatedData(clients=clients, global_eval=global_eval, global_eval_parts={about: len(global_eval)})
