"""A node's local policy: what it checks in stage 0 before it reveals anything.

The SuperNode operator sets it in ``--node-config``; the server cannot change it. A round whose
public parameters break it is refused with one line naming the field, and the node stays out of
that round (a dropout the secure sum recovers from).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..secure_sum.masked.policy import SecurityPolicy
from .codec import RoundSetup

BACKENDS = ("masked",)
# Options a server may set in stage 0; anything else (a roster path, say) is the node's own.
PUBLIC_OPTIONS = ("signed", "degree", "modulus_bits", "prg", "scale", "max_error")


# The institution's security policy (masked/policy.py: the one home of the threshold, γ, δ, σ, η
# rules) from node-config keys; the masked client admits the round with it before it advertises.
SECURITY_KEYS = {"security-gamma": "gamma", "security-delta": "delta",
                 "security-min-threshold": "min_threshold", "security-sigma": "sigma", "security-eta": "eta"}


class PolicyError(ValueError):
    """The round's parameters break the node's policy (or its node config is wrong)."""


def _get(cfg: Mapping[str, Any], key: str, typ: type, default: Any = None) -> Any:
    value = cfg.get(key, default)
    if value is None:
        raise PolicyError(f"node-config: {key!r} is required")
    if (typ is int and isinstance(value, bool)) or not isinstance(value, typ):
        raise PolicyError(f"node-config: {key!r} must be a {typ.__name__}, got {value!r}")
    return value


@dataclass(frozen=True)
class NodePolicy:
    """``name``: this institution's name (must match its roster entry). ``state_dir``: its
    private folder (identity key, its party's gain state and metrics). ``roster``: the public
    roster it trusts. ``config``: its own copy of the federation config TOML (its digest must match
    stage 0's). ``data``: the institution's own JSONL, replacing what that config says for it.
    ``threads``: torch threads for local training. ``max_dim``: the largest vector it
    accepts. ``security``: its SecurityPolicy (``security-*`` keys), which the masked client
    applies before it advertises."""

    name: str
    state_dir: Path
    roster: Path
    config: Path | None = None
    data: Path | None = None
    threads: int = 1
    max_dim: int = 1 << 24
    security: SecurityPolicy = field(default_factory=SecurityPolicy)

    @classmethod
    def from_node_config(cls, cfg: Mapping[str, Any]) -> NodePolicy:
        policy = cls(name=_get(cfg, "name", str), state_dir=Path(_get(cfg, "state-dir", str)),
                     roster=Path(_get(cfg, "roster", str)),
                     config=Path(_get(cfg, "config", str, "")) if cfg.get("config") else None,
                     data=Path(_get(cfg, "data", str, "")) if cfg.get("data") else None,
                     threads=_get(cfg, "threads", int, 1), max_dim=_get(cfg, "max-dim", int, 1 << 24),
                     security=_security(cfg))
        if not policy.name:
            raise PolicyError("node-config: 'name' must not be empty")
        return policy

    def check(self, setup: RoundSetup, last_round: int) -> None:
        """Refuse, naming the field, anything this node did not agree to."""
        spec = setup.spec
        if setup.backend not in BACKENDS:
            raise PolicyError(f"setup.backend: {setup.backend!r} is not one of {', '.join(BACKENDS)}")
        stray = sorted(set(setup.options) - set(PUBLIC_OPTIONS))
        if stray:
            raise PolicyError(f"setup.options: {', '.join(stray)} may not be set by the server")
        if setup.options.get("signed", True) is not True:
            raise PolicyError("setup.options.signed: this node takes part in signed rounds only")
        if self.name not in spec.participants:
            raise PolicyError(f"setup.spec.participants: {self.name!r} is not listed")
        if spec.dim > self.max_dim:
            raise PolicyError(f"setup.spec.dim: {spec.dim} exceeds this node's max-dim {self.max_dim}")
        if spec.round <= last_round:
            raise PolicyError(f"setup.spec.round: {spec.round} is not after the last round {last_round} "
                              "(replay?)")


def _security(cfg: Mapping[str, Any]) -> SecurityPolicy:
    raw = {SECURITY_KEYS[k]: v for k, v in cfg.items() if k in SECURITY_KEYS}
    try:
        return SecurityPolicy.from_dict(raw)
    except ValueError as err:
        raise PolicyError(f"node-config: {err} (node keys: {', '.join(SECURITY_KEYS)})") from None
