"""The attacker: its best estimate of each client's ``[e·Δ, e]`` from one message it received.

This module sees only the server's view (archived payloads and the server's own public keys),
never a client's folder and never the simulation's truth. Per kind:

- ``vector`` (plaintext): the float64 payload *is* the input;
- ``masked``: the words read as signed fixed-point integers (the masks make them uniform, so
  this is as good as any guess — the uniformity check is the evidence);
- ``ciphertexts``: the coefficients of each ciphertext's first polynomial, centred modulo the
  data prime (what a server without the secret key can read out of a ciphertext).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np

from .checks import masked_words
from .view import ServerView

log = logging.getLogger(__name__)

INPUT_KINDS = ("vector", "masked", "ciphertexts")


@dataclass(frozen=True)
class MessageEstimate:
    round: int
    sender: str
    kind: str
    vector: np.ndarray  # the attacker's estimate of [e·Δ, e]; the last entry estimates e


def _from_masked(payload: bytes, word_bytes: int) -> np.ndarray:
    words = masked_words(payload)
    return np.frombuffer(words, dtype="<i4" if word_bytes == 4 else "<i8").astype(np.float64)


class _CiphertextReader:
    """Reads ciphertext coefficients with the server's public context (no secret needed)."""

    def __init__(self, view: ServerView) -> None:
        import tenseal as ts

        from ..secure_sum.ckks.sealio import SealIO

        kdir = view.server_dir / "keys" / "ckks"
        ctx = ts.context_from((kdir / "public_context.bin").read_bytes(), n_threads=1)
        self.meta = json.loads((kdir / "meta.json").read_text())
        self.sctx = ctx.data.seal_context()
        self.q = int(self.sctx.first_context_data().parms().coeff_modulus()[0].value())
        self.io = SealIO()

    def __call__(self, payload: bytes) -> np.ndarray:
        import tenseal.sealapi as seal

        from ..secure_sum.ckks.wire import decode_bundle

        b = decode_bundle(payload)
        coeffs = []
        for blob in b.chunks:
            ct = seal.Ciphertext()
            self.io.load(ct, self.sctx, blob)
            n = ct.poly_modulus_degree()
            arr = ct.dyn_array()
            c0 = np.array([arr[i] for i in range(n)], dtype=np.float64)  # first RNS limb of c0
            coeffs.append(np.where(c0 > self.q / 2, c0 - self.q, c0))
        flat = np.concatenate(coeffs)
        out = np.zeros(b.dim)
        out[: min(b.dim, flat.size)] = flat[: b.dim]
        return out


def estimate_inputs(view: ServerView) -> list[MessageEstimate]:
    """One estimate per archived input message (empty when payloads were not archived)."""
    if not view.archived:
        return []
    _, options = view.backend_options()
    word_bytes = int(options.get("modulus_bits", 32)) // 8
    reader: _CiphertextReader | None = None
    out = []
    for e in view.entries:
        if e.kind not in INPUT_KINDS:
            continue
        payload = view.payload(e)
        if payload is None:
            continue
        try:
            if e.kind == "vector":
                vec = np.frombuffer(payload, dtype="<f8").copy()
            elif e.kind == "masked":
                vec = _from_masked(payload, word_bytes)
            else:
                reader = reader or _CiphertextReader(view)
                vec = reader(payload)
        except ValueError as err:
            log.warning("round %d %s from %s: cannot read (%s)", e.round, e.kind, e.sender, err)
            continue
        out.append(MessageEstimate(e.round, e.sender, e.kind, vec))
    return out
