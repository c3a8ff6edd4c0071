"""Each client's private prompts and held-out split, plus the global evaluation set.

A client with generated families draws them (data/partition.py); a client with its own file
trains on that file only and holds out a split of it (data/own.py). The global evaluation is
the built-in held-out set over the families generated clients train on, plus the union of the
own-data clients' held-out rows: always the federation's own tasks, never families nobody uses.
"""

from __future__ import annotations

import logging

from ..config import ClientConfig, RunConfig
from ..data.own import drop_trained_eval, remove_held_out, split_own, unique_prompts
from ..data.partition import (
    ClientData,
    FederatedData,
    family_mixes,
    make_federated_data,
)
from ..model.load import EMBEDDED
from ..seeding import derive_seed
from ..tasks import GENERATED_FAMILIES
from .population import population_data
from .public_set import exclude_public, public_set

log = logging.getLogger(__name__)


def build_data(cfg: RunConfig) -> FederatedData:
    """Every client's data; under ``[pubswap]`` without the public prompts (public_set.py)."""
    fed = _build_data(cfg)
    return exclude_public(fed, public_set(cfg)) if cfg.pubswap.enabled else fed


def _build_data(cfg: RunConfig) -> FederatedData:
    if cfg.population is not None:  # many generated clients, each drawn when sampled (population.py)
        return _say_embedded(cfg, population_data(cfg, cfg.population))
    generated = [c for c in cfg.clients if not c.data]
    fed = _say_embedded(cfg, _generated(cfg, generated))
    own = {c.name: split_own(c.data, c.eval_data, cfg.data.own_eval_fraction,
                             derive_seed(cfg.seed, "own-eval", c.name))
           for c in cfg.clients if c.data}
    if not own:
        return fed
    # No training row may be a prompt held out anywhere (the built-in sets are public, so they
    # count), and no held-out row a prompt some other client trains on.
    held = {p.prompt for p in fed.global_eval} | {p.prompt for c in fed.clients.values() for p in c.eval}
    held |= {p.prompt for s in own.values() for p in s.eval}
    own = {n: remove_held_out(s, held, "the global or a client's held-out set") for n, s in own.items()}
    for name in own:
        trained = {p.prompt for c in fed.clients.values() for p in c.train}
        trained |= {p.prompt for n, s in own.items() if n != name for p in s.train}
        own[name] = drop_trained_eval(own[name], trained, "another client trains on it")
    for name, split in own.items():
        fed.clients[name] = ClientData(name, {}, split.train, split.eval)
    rows = unique_prompts([p for s in own.values() for p in s.eval], fed.global_eval)
    fed.global_eval = fed.global_eval + rows
    sources = ", ".join(s.eval_source for s in own.values())
    about = f"rows held out from the clients' own data ({sources}), never in any client's training"
    fed.global_eval_parts[about] = len(rows)
    fed.clients = {c.name: fed.clients[c.name] for c in cfg.clients}  # config order
    return fed


def build_node_data(cfg: RunConfig, name: str, data: str) -> ClientData:
    """Institution ``name``'s data on its own machine, from its own file (a SuperNode's node-config
    ``data``; a path in the shared config means nothing there): it trains on that file and holds
    out a seeded split of it. It removes what it can see, the public held-out sets and the rows
    the generated clients train on, but not overlap with other institutions' own files, which it
    never sees (README "## Deployment"). Any error is one ValueError naming the file."""
    if cfg.population is not None:
        raise ValueError("node-config 'data': a [population] federation draws its clients' data itself")
    if name not in {c.name for c in cfg.clients}:
        raise ValueError(f"clients: {name!r} is not in the federation config")
    fed = _generated(cfg, [c for c in cfg.clients if not c.data and c.name != name])
    try:
        split = split_own(data, "", cfg.data.own_eval_fraction, derive_seed(cfg.seed, "own-eval", name))
        held = {p.prompt for p in fed.global_eval} | {p.prompt for c in fed.clients.values() for p in c.eval}
        split = remove_held_out(split, held, "the global or a generated client's held-out set")
        trained = {p.prompt for c in fed.clients.values() for p in c.train}
        split = drop_trained_eval(split, trained, "a generated client trains on it")
    except (OSError, ValueError) as err:
        raise ValueError(f"node-config 'data': {err}") from None
    own = ClientData(name, {}, split.train, split.eval)
    if not cfg.pubswap.enabled:
        return own
    return exclude_public(FederatedData(clients={name: own}, global_eval=[]), public_set(cfg)).clients[name]


def _say_embedded(cfg: RunConfig, fed: FederatedData) -> FederatedData:
    if cfg.model.path == EMBEDDED:  # the held-out space lies outside the warm start (tasks/heldout.py)
        fed.global_eval_parts = {f"{k} nor in the embedded model's warm start": n
                                 for k, n in fed.global_eval_parts.items()}
    return fed


def _generated(cfg: RunConfig, clients: list[ClientConfig]) -> FederatedData:
    """Generated train/eval for the clients without a data file, and the built-in global set
    over the families they use (none when every client brings its own data)."""
    d = cfg.data
    for c in cfg.clients:
        if c.data and c.families:
            log.warning("clients.%s: trains and evaluates on its data file %s only; its families are ignored",
                        c.name, c.data)
    if d.partition == "explicit":
        mixes = {c.name: c.families for c in clients}
    else:  # mixes over every client, as before, so adding a data file does not reshuffle the others
        every = family_mixes([c.name for c in cfg.clients], d.partition, d.alpha, list(GENERATED_FAMILIES),
                             cfg.seed, d.families_per_client)
        mixes = {c.name: every[c.name] for c in clients}
    if not mixes:
        return FederatedData(clients={}, global_eval=[])
    return make_federated_data(mixes, d.train_size, d.eval_size, d.global_eval_size, cfg.seed)

