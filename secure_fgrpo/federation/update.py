"""The server update from the two secure sums: Σe_iΔ_i / Σe_i, applied plainly, with server
momentum (FedAvgM, Hsu et al. 2019) or via FedAdam (Reddi et al. 2021).

Pure functions of (global, sum, optimizer state) so the same code runs at the server or, when
the backend keeps the aggregate from the server, identically at every client."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import ServerOptConfig


@dataclass
class ServerOptState:
    m: np.ndarray | None = None
    v: np.ndarray | None = None


def ratio_of_sums(total: np.ndarray) -> np.ndarray:
    """``total`` = [Σe_iΔ_i, Σe_i] -> the weighted mean update."""
    denom = float(total[-1])
    if not denom > 0:
        raise ValueError(f"sum of weights is {denom}: nothing to divide by")
    return (total[:-1] / denom).astype(np.float32)


def apply_update(global_vec: np.ndarray, update: np.ndarray, cfg: ServerOptConfig,
                 state: ServerOptState) -> tuple[np.ndarray, ServerOptState]:
    if cfg.kind == "sgd":
        return (global_vec + cfg.lr * update).astype(np.float32), state
    if cfg.kind == "fedavgm":  # m = β·m + update; global += lr·m
        m = update if state.m is None else cfg.beta1 * state.m + update
        return (global_vec + cfg.lr * m).astype(np.float32), ServerOptState(m=m.astype(np.float32))
    m = np.zeros_like(update) if state.m is None else state.m
    v = np.full_like(update, cfg.tau**2) if state.v is None else state.v
    m = cfg.beta1 * m + (1 - cfg.beta1) * update
    v = cfg.beta2 * v + (1 - cfg.beta2) * update * update
    new = global_vec + cfg.lr * m / (np.sqrt(v) + cfg.tau)
    return new.astype(np.float32), ServerOptState(m=m.astype(np.float32), v=v.astype(np.float32))
