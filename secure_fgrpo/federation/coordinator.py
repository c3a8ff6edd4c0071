"""The server party: a round's public parameters (stage 0), and what follows the secure sum —
the update rule applied to the global model where the backend reveals the sum, the
checkpoint, the exclusions and the server's metrics row. It never holds an individual vector,
gain, weight or noise draw: those stay in the parties (party.py).

The in-process federation (runner.py) and the Flower ServerApp (flower/coordinator.py) drive
the same object; only the transport between them and the parties differs."""

from __future__ import annotations

import logging
from typing import Any

from ..config import RunConfig
from ..privacy.plan import ClientLevelPlan, SkellamPlan
from .global_model import GlobalModel
from .release import Release
from .server import Server
from .setup import RoundSetup, config_digest, noise_public, vector_digest

log = logging.getLogger(__name__)


class Coordinator:
    def __init__(self, cfg: RunConfig, server: Server, global_model: GlobalModel,
                 plan: ClientLevelPlan | SkellamPlan | None, dim: int) -> None:
        self.cfg, self.server, self.global_model, self.plan, self.dim = cfg, server, global_model, plan, dim
        self.config_digest = config_digest(cfg)

    def open_round(self, round_: int, participants: list[str]) -> RoundSetup:
        """Stage 0: the public parameters every party checks before it trains or reveals anything."""
        spec = self.server.sum_spec(round_, participants, self.dim)
        noise = self.plan.noise(spec) if self.plan is not None else None
        state = self.global_model.state
        return RoundSetup(spec=spec, backend=self.cfg.secure_sum.backend, options=dict(self.public_options),
                          noise=noise_public(noise) if noise is not None else None, model_version=state.round,
                          global_digest=vector_digest(state.vector), config_digest=self.config_digest)

    @property
    def public_options(self) -> dict[str, Any]:
        """The backend options a party may be told (never a path or a policy: those are its own)."""
        private = ("roster", "policy", "client_policies", "keys_dir")
        return {k: v for k, v in self.cfg.backend_options.items() if k not in private}

    def dp_row(self, round_: int) -> dict[str, Any]:
        """The client-level plan's ε after ``round_`` (and the ε against this server, which knows
        who was sampled: privacy/plan.py), for the metrics row; {} without client-level noise."""
        if self.plan is None:
            return {}
        return self.plan.row(round_, self.server.most_rounds_sampled(round_))

    def close_round(self, round_: int, release: Release) -> tuple[dict[str, Any], dict[str, Any]]:
        """Apply the revealed sum (if any), checkpoint, exclude the blamed; returns the server's
        metrics row and what the holder of the global model learned."""
        outcome, total = release.outcome, release.total
        self.server.exclude(outcome.blamed)  # one malicious client costs at most this round
        row: dict[str, Any] = {"round": round_, "contributors": len(outcome.contributors),
                               "aborted": outcome.aborted}
        if outcome.blamed:
            row["blamed"] = sorted(outcome.blamed)
        row.update(self.dp_row(round_))
        known: dict[str, Any] = {}
        if outcome.aborted or total is None or not total[-1] > 0:
            row.update(aborted=True, reason=outcome.reason or "sum of weights is 0: nothing to apply")
        else:
            known = {"update_norm": self.global_model.apply(total), "sum_of_weights": float(total[-1])}
        self.global_model.save(round_)
        return row, known
