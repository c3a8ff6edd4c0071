"""Client-level DP on the vector each institution sends, ``v = [e·Δ, e]``.

Sensitivity (adding or removing one institution): with ``‖Δ‖ ≤ C`` (federation.delta_clip) and
``0 ≤ e ≤ e_max``, ``‖v‖₂ ≤ sqrt((e_max·C)² + e_max²) = e_max·sqrt(C² + 1)`` — the weight
coordinate counts, because the server learns the sum of weights too. The sum must carry
``N(0, σ²)`` on every coordinate (data and weight), ``σ = z·S``:

- ``local``: each client adds ``N(0, σ²)`` itself (private even against the server's view of
  a single vector);
- ``distributed``: each client adds ``N(0, σ²/t)``, t the secure sum's threshold of survivors,
  so any sum of at least t contributions carries at least σ². The guarantee then holds for
  whoever sees only the sum (the masks or the encryption hide the rest); c colluding clients
  can remove their own c shares.

Noise takes a vector out of the public box the SumSpec declares (‖data‖ ≤ data_bound,
0 ≤ weight ≤ weight_bound), which fixed-point backends size their words from. So the box is
widened publicly by the noise's tail (exceeded with probability below 2^-46: Gaussian norm
concentration, ``P(‖X‖ ≥ std·(sqrt(d) + 8)) ≤ e^-32``), the weight travels shifted by
``K = 8·std`` so it stays non-negative, the noised vector is projected into the box (post-
processing: the guarantee is unchanged), and ``K·contributors`` is subtracted from the sum.

``skellam`` (masked backend only, :class:`SkellamNoise`): the float vector is only clipped here;
the masked client rounds it at the public fixed-point scale γ (conditional randomized rounding)
and adds its integer share ``Sk(μ/t)`` to its words before masking, so the guarantee covers
exactly what the server decodes (privacy/skellam.py). No weight offset is needed: words are
signed, and the noised sum of weights is floored as for Gaussian noise (plan.finish_sum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..secure_sum.base import SumSpec
from .noise import SecureRandom
from .skellam import conditional_round

TAIL = 8.0  # standard deviations of headroom


def sensitivity(weight_max: float, delta_clip: float) -> float:
    """L2 sensitivity of one institution's [e·Δ, e]: e_max·sqrt(C² + 1)."""
    return weight_max * math.sqrt(delta_clip ** 2 + 1.0)


def share_std(sigma: float, mechanism: str, threshold: int) -> float:
    """Each client's own noise std for the sum to carry σ (see the module docstring)."""
    if mechanism == "local":
        return sigma
    if mechanism == "distributed":
        if threshold < 1:
            raise ValueError(f"threshold must be >= 1, got {threshold}")
        return sigma / math.sqrt(threshold)
    raise ValueError(f"privacy.client_level.mechanism {mechanism!r} has no float noise share")


@dataclass(frozen=True)
class ClientNoise:
    """Public parameters of one round's client-level noise, the same for every participant."""

    std: float  # this client's Gaussian std on every coordinate
    weight_max: float  # e_max the sensitivity assumes
    delta_clip: float  # C
    weight_offset: float  # K: added to the noised weight, removed from the sum
    data_bound: float  # the widened SumSpec box
    weight_bound: float

    @classmethod
    def for_round(cls, std: float, weight_max: float, delta_clip: float, dim: int) -> ClientNoise:
        """``dim`` counts the data coordinates and the weight."""
        k = TAIL * std
        return cls(std=std, weight_max=weight_max, delta_clip=delta_clip, weight_offset=k,
                   data_bound=weight_max * delta_clip + std * (math.sqrt(dim - 1) + TAIL),
                   weight_bound=weight_max + 2 * k)

    def privatize(self, vector: np.ndarray, source: SecureRandom | None = None) -> np.ndarray:
        """Clip to the sensitivity, add this client's noise, shift the weight, fit the box."""
        v = clip_to_sensitivity(vector, self.weight_max, self.delta_clip)
        v += (source or SecureRandom()).normal(v.size, self.std)
        v[-1] = min(max(v[-1] + self.weight_offset, 0.0), self.weight_bound)
        _clip(v, self.data_bound)
        return v

    def widen(self, spec: SumSpec) -> SumSpec:
        """The spec the server broadcasts when client-level DP is on (public)."""
        return replace(spec, data_bound=self.data_bound, weight_bound=self.weight_bound)

    def remove_offset(self, total: np.ndarray, contributors: int) -> np.ndarray:
        """Σ (e_i + noise_i + K) over the contributors, minus K per contributor."""
        out = np.array(total, dtype=np.float64)
        out[-1] -= self.weight_offset * contributors
        return out


@dataclass(frozen=True)
class SkellamNoise:
    """Public parameters of one round's Skellam noise, for the masked backend's clients (which
    call :meth:`round` and :meth:`sample`); every party derives the same round context from them."""

    scale: float  # γ: quanta per unit, data and weight alike (one scale: Δ2 is then γ·S rounded)
    share: float  # each client adds Sk(share) per coordinate, variance 2·share quanta²
    l2_bound: float  # Δ2: conditional rounding keeps every client's integer vector within it
    word_bound: int  # ceil(Δ2) + the share's 2^-100 tail: a client's noised coordinate, in quanta
    weight_max: float
    delta_clip: float

    def privatize(self, vector: np.ndarray, source: SecureRandom | None = None) -> np.ndarray:
        """Clip to the sensitivity only: the noise is integer and added by the masked client."""
        return clip_to_sensitivity(vector, self.weight_max, self.delta_clip)

    def widen(self, spec: SumSpec) -> SumSpec:
        """The box whose fixed-point words at scale γ hold ``word_bound`` quanta per client."""
        bound = self.word_bound / self.scale
        return replace(spec, data_bound=bound, weight_bound=bound)

    def remove_offset(self, total: np.ndarray, contributors: int) -> np.ndarray:
        return np.array(total, dtype=np.float64)  # no offset: the words are signed

    def round(self, vector: np.ndarray, source: SecureRandom | None = None) -> np.ndarray:
        """Clip, scale by γ and round conditionally: integers within L2 norm Δ2 (int64)."""
        v = clip_to_sensitivity(vector, self.weight_max, self.delta_clip)
        return conditional_round(v * self.scale, self.l2_bound, source or SecureRandom())

    def sample(self, n: int, source: SecureRandom | None = None) -> np.ndarray:
        """This client's share of the noise: n draws of Sk(share) (int64)."""
        return (source or SecureRandom()).skellam(self.share, n)

    def public(self) -> dict[str, str]:
        """What the round context's digest binds (floats as exact hex)."""
        return {"mechanism": "skellam", "scale": self.scale.hex(), "share": float(self.share).hex(),
                "l2_bound": float(self.l2_bound).hex(), "word_bound": str(self.word_bound)}


def clip_to_sensitivity(vector: np.ndarray, weight_max: float, delta_clip: float) -> np.ndarray:
    """A copy of [e·Δ, e] with e ≤ e_max and ‖e·Δ‖ ≤ e_max·C: norm ≤ sensitivity()."""
    v = np.array(vector, dtype=np.float64)
    if v.ndim != 1 or v.size < 2 or not np.all(np.isfinite(v)):
        raise ValueError("client-level DP: the input must be a finite vector [e·Δ, e]")
    if v[-1] < 0:
        raise ValueError("client-level DP: the weight e is negative")  # its value stays private
    if v[-1] > weight_max:  # scale the whole vector: Δ keeps its direction and norm bound
        v *= weight_max / v[-1]
    _clip(v, weight_max * delta_clip)
    return v


def _clip(v: np.ndarray, bound: float) -> None:
    """Scale the data part (all but the last coordinate) into the L2 ball of radius ``bound``."""
    norm = float(np.linalg.norm(v[:-1]))
    if norm > bound:
        v[:-1] *= bound / norm
