"""exp(g/τ) for g in [-G, G], as a polynomial the server evaluates under CKKS.

With ``u = g/G`` in [-1, 1] and ``a = G/τ`` we approximate ``f(u) = exp(a·(u - 1))``, i.e. the
weight divided by ``e^a``: values stay in (0, 1], so the encrypted products never outgrow the
modulus; the decoder multiplies the sums back by ``e^a`` (the ratio Σe·Δ/Σe does not change).
The fit is a least-squares fit weighted by 1/f on Chebyshev nodes, so it controls the *relative*
error, which is what moves the update; the max relative error on a dense grid is reported.

Encrypted evaluation uses the power basis with a depth of ceil(log2(d+1)) levels: powers
u^(2^j) by squaring; the term c_k·u^k multiplies c_k into the lowest power of k's binary
expansion first, then the higher powers. Each constant is encoded at the scale that makes the
term end exactly at the target scale (SEAL adds only ciphertexts of equal scale and level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import tenseal.sealapi as seal  # SEAL bindings shipped with TenSEAL

from .params import poly_depth


@dataclass(frozen=True)
class ExpApprox:
    """p(u) ≈ exp(a·(u - 1)) on [-1, 1]; ``coeffs[k]`` multiplies u^k."""

    a: float
    degree: int
    coeffs: tuple[float, ...]
    max_rel_error: float

    @classmethod
    def fit(cls, gain_clip: float, tau: float, degree: int) -> ExpApprox:
        if not (gain_clip > 0 and tau > 0):
            raise ValueError("gain_clip and tau must be > 0")
        a = gain_clip / tau
        nodes = np.cos(np.pi * (np.arange(4 * degree + 64) + 0.5) / (4 * degree + 64))
        target = np.exp(a * (nodes - 1.0))
        vander = np.vander(nodes, degree + 1, increasing=True) / target[:, None]
        coeffs, *_ = np.linalg.lstsq(vander, np.ones_like(nodes), rcond=None)
        grid = np.linspace(-1.0, 1.0, 20001)
        approx = np.polynomial.polynomial.polyval(grid, coeffs)
        rel = float(np.max(np.abs(approx / np.exp(a * (grid - 1.0)) - 1.0)))
        return cls(a, degree, tuple(float(c) for c in coeffs), rel)

    @property
    def depth(self) -> int:
        return poly_depth(self.degree)

    def weight(self, gain: np.ndarray | float, gain_clip: float) -> np.ndarray:
        """What the server's polynomial yields for ``gain``, times e^a (plaintext reference)."""
        u = np.asarray(gain, dtype=np.float64) / gain_clip
        return np.polynomial.polynomial.polyval(u, self.coeffs) * math.exp(self.a)


class EncryptedPoly:
    """Evaluates an :class:`ExpApprox` on Enc(u) (top level, scale ``scale``) with relin keys.

    The result sits ``depth`` levels lower at exactly ``scale``."""

    def __init__(self, seal_ctx: Any, relin_keys: Any, approx: ExpApprox, scale: float) -> None:
        self.ctx, self.rk, self.approx, self.scale = seal_ctx, relin_keys, approx, scale
        self.ev = seal.Evaluator(seal_ctx)
        self.encoder = seal.CKKSEncoder(seal_ctx)

    # chain helpers -------------------------------------------------------------------
    def _data(self, ct: Any) -> Any:
        return self.ctx.get_context_data(ct.parms_id())

    def _lower_to(self, ct: Any, index: int) -> Any:
        """``ct`` itself if already at chain index ``index``, else a mod-switched copy."""
        if self._data(ct).chain_index() == index:
            return ct
        out = seal.Ciphertext()
        self.ev.mod_switch_to(ct, self._parms_at(index), out)
        return out

    def _mul(self, x: Any, y: Any) -> Any:
        ix, iy = self._data(x).chain_index(), self._data(y).chain_index()
        if ix != iy:
            x, y = self._lower_to(x, min(ix, iy)), self._lower_to(y, min(ix, iy))
        out = seal.Ciphertext()
        self.ev.multiply(x, y, out)
        self.ev.relinearize_inplace(out, self.rk)
        self.ev.rescale_to_next_inplace(out)
        return out

    # evaluation -----------------------------------------------------------------------
    def evaluate(self, ct_u: Any) -> Any:
        depth = self.approx.depth
        top = self._data(ct_u).chain_index()
        out_index = top - depth
        if out_index < 1:
            raise ValueError("the context has too few levels for this polynomial and the final product")
        powers = [ct_u]
        for _ in range(1, depth):
            sq = seal.Ciphertext()
            self.ev.square(powers[-1], sq)
            self.ev.relinearize_inplace(sq, self.rk)
            self.ev.rescale_to_next_inplace(sq)
            powers.append(sq)
        acc = None
        for k, c in enumerate(self.approx.coeffs):
            if k == 0 or c == 0.0:
                continue
            term = self._term(powers, k, c)
            term = self._lower_to(term, out_index)
            if not math.isclose(term.scale, self.scale, rel_tol=1e-9):
                raise RuntimeError(f"term {k} ended at scale {term.scale}, expected {self.scale}")
            term.scale = self.scale
            if acc is None:
                acc = term
            else:
                self.ev.add_inplace(acc, term)
        if acc is None:
            raise ValueError("polynomial must have a non-constant term")
        const = seal.Plaintext()
        self.encoder.encode(float(self.approx.coeffs[0]), self._parms_at(out_index), self.scale, const)
        self.ev.add_plain_inplace(acc, const)
        return acc

    def _term(self, powers: list[Any], k: int, c: float) -> Any:
        bits = [j for j in range(len(powers)) if (k >> j) & 1]
        if k >> len(powers):
            raise ValueError(f"degree {k} needs more powers than depth {self.approx.depth} provides")
        # Dry run of the scale arithmetic along this term's path, to pick the constant's scale.
        first = powers[bits[0]]
        index = self._data(first).chain_index()
        factor = first.scale / self._prime_at(index)
        index -= 1
        for j in bits[1:]:
            index = min(index, self._data(powers[j]).chain_index())
            factor = factor * powers[j].scale / self._prime_at(index)
            index -= 1
        const_scale = self.scale / factor
        pt = seal.Plaintext()
        self.encoder.encode(c, first.parms_id(), const_scale, pt)
        term = seal.Ciphertext()
        self.ev.multiply_plain(first, pt, term)
        self.ev.rescale_to_next_inplace(term)
        for j in bits[1:]:
            term = self._mul(term, powers[j])
        return term

    def _data_at(self, index: int) -> Any:
        data = self.ctx.first_context_data()
        while data.chain_index() > index:
            data = data.next_context_data()
        return data

    def _parms_at(self, index: int) -> Any:
        return self._data_at(index).parms_id()

    def _prime_at(self, index: int) -> float:
        return float(self._data_at(index).parms().coeff_modulus()[-1].value())
