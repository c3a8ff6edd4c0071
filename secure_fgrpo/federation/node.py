"""One institution's party on its own machine (a Flower SuperNode, say): built from the
federation config file it holds and its own state folder, then one round of stage 0 ->
local GRPO -> its secure-sum client. Imports the training stack; a transport imports this
module only where training happens."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig, load_config
from ..model.load import resolve_model_path
from ..privacy.plan import ClientLevelPlan
from ..secure_sum import make_backend
from ..secure_sum.base import SumClient
from .datasets import build_data, build_node_data
from .local import run_training
from .party import Party
from .setup import RoundSetup

log = logging.getLogger(__name__)


@dataclass
class Contribution:
    client: SumClient  # holds [e·Δ, e] (or its noised words) for the secure sum's stages
    train_seconds: float  # local GRPO, the global's evaluation included
    sum_seconds: float  # gain, clip, noise and the secure-sum client's input encoding


def node_party(config: Path, name: str, state_dir: Path, backend_options: dict[str, Any], dim: int,
               data_file: Path | None = None) -> Party:
    """The party ``name`` from its own copy of the federation config, for adapter vectors of
    ``dim`` parameters (its privacy plan is sized by it; a vector of another size fails to
    load into its model). ``data_file``: the institution's own JSONL (node-config ``data``),
    which replaces what the shared config says for it; only this node's data is built. Its gain
    state and metrics live under ``state_dir/party`` (0700, private), its secure-sum keys in
    ``state_dir``."""
    cfg: RunConfig = load_config(config)
    data = (build_node_data(cfg, name, str(data_file)) if data_file is not None
            else build_data(cfg).clients.get(name))
    if data is None:
        raise ValueError(f"clients: {name!r} is not in {config}")
    backend = make_backend(cfg.secure_sum.backend, {**cfg.backend_options, **backend_options})
    model_path = resolve_model_path(cfg.model.path, cfg.model.embedded)
    root = Path(state_dir) / "party"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Party(cfg, name, data, root, backend, Path(state_dir), ClientLevelPlan.build(cfg, dim + 1), model_path)


def contribute(party: Party, setup: RoundSetup, vector: np.ndarray, threads: int = 1) -> Contribution:
    """Stage 0 at the party: resume its own state as of the global's version, check the round,
    train, and build its secure-sum client (raises party.Refused naming a field)."""
    party.resume(setup.model_version)
    party.accept(setup, vector)
    t0 = time.perf_counter()
    outcome = run_training(party.job(vector, threads))
    t1 = time.perf_counter()
    client = party.join(outcome)
    return Contribution(client, t1 - t0, time.perf_counter() - t1)
