"""Each institution's own security policy for the masked sum, checked before it reveals anything.

The server proposes a round (participants, threshold T, degree k, share threshold t_k); the
server never chooses the policy. A client admits the round only if, by its own γ (colluding
fraction), δ (dropout fraction), σ and η, the proposal is safe (params.py derives the bounds):

* every participant is on the roster it expects (``security.roster``),
* T ≥ ⌈min_threshold · n⌉ (``security.min_threshold``),
* 2T > n + c, so two survivor sets that each collect T signatures share an honest signer and
  honest clients agree on one set (``security.gamma``),
* n · P[some client has ≥ t_k - 1 colluding neighbours] ≤ 2^-σ (``security.gamma``),
* T ≤ n - d and n · P[some client keeps < t_k holders] ≤ 2^-η (``security.delta``).

A refusal is a :class:`PolicyRefusal` (a ProtocolError against the server) naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..base import SERVER, ProtocolError, SumSpec
from .params import ETA, SIGMA, GraphParams, counts, privacy_failure, recovery_failure

KEYS = ("gamma", "delta", "min_threshold", "sigma", "eta", "roster")


class PolicyRefusal(ProtocolError):
    """The server's proposed parameters fall below this institution's policy."""

    def __init__(self, key: str, stage: str, reason: str) -> None:
        super().__init__(SERVER, stage, f"security.{key}: {reason}")
        self.key = key


@dataclass(frozen=True)
class SecurityPolicy:
    gamma: float = 0.2  # fraction of participants that may collude with the server
    delta: float = 0.1  # fraction of participants that may drop out (at random)
    min_threshold: float = 0.5  # smallest round threshold T accepted, as a fraction of n
    sigma: int = SIGMA  # privacy: failure probability ≤ 2^-sigma
    eta: int = ETA  # recovery: failure probability ≤ 2^-eta
    roster: tuple[str, ...] = ()  # the participants this institution expects (empty: anyone signed)

    def __post_init__(self) -> None:
        for key in ("gamma", "delta", "min_threshold"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1 + (key == "min_threshold"):
                raise ValueError(f"security.{key} must be a number in [0, 1), got {v!r}")
        for key in ("sigma", "eta"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 128:
                raise ValueError(f"security.{key} must be an integer in [1, 128], got {v!r}")
        if self.gamma + 2 * self.delta >= 1:
            raise ValueError(f"security: gamma + 2·delta = {self.gamma + 2 * self.delta:g} must be < 1 "
                             f"(no threshold is both reachable after dropouts and above (n + c)/2)")
        if not isinstance(self.roster, tuple) or not all(isinstance(n, str) and n for n in self.roster):
            raise ValueError("security.roster must be a list of client names")

    @classmethod
    def from_dict(cls, raw: dict[str, Any], base: SecurityPolicy | None = None) -> SecurityPolicy:
        """A policy from a config table (unknown keys refused by name), over ``base``."""
        unknown = sorted(set(raw) - set(KEYS))
        if unknown:
            raise ValueError(f"security: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
        values = {k: getattr(base or cls(), k) for k in KEYS}
        values.update(raw)
        if isinstance(values["roster"], list):
            values["roster"] = tuple(values["roster"])
        return cls(**values)

    def admit(self, spec: SumSpec, graph: GraphParams, stage: str = "advertise") -> None:
        """Raise :class:`PolicyRefusal` unless the round's public parameters meet this policy."""
        n, t = len(spec.participants), spec.threshold
        if self.roster:
            stray = sorted(set(spec.participants) - set(self.roster))
            if stray:
                raise PolicyRefusal("roster", stage, f"participant(s) {', '.join(stray)} are not on the "
                                                     f"roster this institution expects")
        need = -(-self.min_threshold * n // 1)
        if t < need:
            raise PolicyRefusal("min_threshold", stage, f"round threshold {t} of {n} is below "
                                                        f"{self.min_threshold:g}·n = {int(need)}")
        c, d = counts(n, self.gamma, self.delta)
        if 2 * t <= n + c:
            raise PolicyRefusal("gamma", stage, f"threshold {t} of {n} with {c} colluder(s): 2T must exceed "
                                                f"n + c = {n + c}, or the server could show honest clients "
                                                f"two survivor sets")
        k, t_k = graph.degree, graph.share_threshold
        if not 2 <= t_k <= k + 1:
            raise PolicyRefusal("gamma", stage, f"share threshold {t_k} outside [2, degree + 1 = {k + 1}]")
        p = privacy_failure(n, k, t_k, c)  # exact at k = n - 1 too: X = c there
        if p > 2.0 ** -self.sigma:
            raise PolicyRefusal("gamma", stage, f"degree {k}, share threshold {t_k}: {c} colluder(s) expose "
                                                f"some client's input with probability up to {p:.3g} > "
                                                f"2^-{self.sigma}")
        if t > n - d:
            raise PolicyRefusal("delta", stage, f"threshold {t} of {n} cannot be met after {d} dropout(s)")
        q = recovery_failure(n, k, t_k, d)
        if q > 2.0 ** -self.eta:
            raise PolicyRefusal("delta", stage, f"degree {k}, share threshold {t_k}: {d} dropout(s) leave some "
                                                f"input unrecoverable with probability up to {q:.3g} > 2^-{self.eta}")
