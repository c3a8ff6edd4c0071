"""A client's side: encrypts its vector, and decrypts the sum when it is asked to.

Input layout (``set_input``):

- ``weights = "client"``: ``[e_i·Δ_i, e_i]`` (length ``spec.dim``), as for every backend.
- ``weights = "server"``: ``[n_i^α·Δ_i, n_i^α, g_i]`` (length ``spec.dim + 1``): the client's
  delta and base weight *without* the exp factor, then its clipped gain ``g_i`` in [-G, G].
  The server multiplies both by its polynomial of exp(g_i/τ); the sum it produces has the usual
  ``spec.dim`` layout ``[Σ e_i·Δ_i, Σ e_i]``. Use :func:`server_weight_input` to build it.
"""

from __future__ import annotations

import math

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..base import SERVER, Message, ProtocolError, SumClient, SumSpec
from .binding import Binding, body_digest
from .codec import Codec
from .server import DECRYPT, INPUT, KIND_CIPHERTEXTS, KIND_DECRYPT_REQ, KIND_ENC_SUM, KIND_PLAIN_SUM, Mode
from .wire import KIND_DECRYPT, KIND_INPUT, KIND_SUM, SIGNATURE_BYTES, Bundle, WireError, decode_bundle, encode_bundle


def server_weight_input(scaled_delta: np.ndarray, base_weight: float, gain: float) -> np.ndarray:
    """``[n^α·Δ, n^α, g]`` for ``weights = "server"``."""
    return np.concatenate([np.asarray(scaled_delta, dtype=np.float64), [float(base_weight), float(gain)]])


class CKKSClient(SumClient):
    def __init__(self, name: str, spec: SumSpec, codec: Codec, mode: Mode, binding: Binding,
                 identity: Ed25519PrivateKey, *, tau: float = 1.0, gain_clip: float = 0.0) -> None:
        super().__init__(name, spec)
        self.codec, self.mode = codec, mode
        self.binding, self._identity = binding, identity
        self._sent: bytes | None = None  # digest of the input this client signed
        self.tau, self.gain_clip = tau, gain_clip
        self._vector: np.ndarray | None = None
        self._result: np.ndarray | None = None
        self.contributors: tuple[str, ...] = ()  # who is inside the decrypted sum

    def set_input(self, vector: np.ndarray) -> None:
        raw = np.asarray(vector)
        if raw.dtype.kind not in "fiu":
            # np.float64(complex) silently drops the imaginary part (issue 13, item 7).
            raise ValueError(f"{self.name}: input vector has dtype {raw.dtype}; the secure sum takes real numbers "
                             "[e*delta, e] (a complex part would be dropped)")
        vec = raw.astype(np.float64)
        if self.mode.weights == "server":
            if vec.shape != (self.spec.dim + 1,):
                raise ValueError(f"{self.name}: weights='server' input is [n^a*delta, n^a, gain] of length "
                                 f"{self.spec.dim + 1}, got shape {vec.shape}")
            gain = float(vec[-1])
            if not (math.isfinite(gain) and abs(gain) <= self.gain_clip * (1 + 1e-9)):
                raise ValueError(f"{self.name}: gain outside [-G, G] with G={self.gain_clip}")
            # The bounds apply to what the sum will contain: exp(g/τ)·[n^α·Δ, n^α].
            self.spec.check_input(vec[:-1] * math.exp(gain / self.tau), self.name)
        else:
            self.spec.check_input(vec, self.name)
        self._vector = vec.copy()
        self._result = None

    def respond(self, stage: str, inbound: Message | None) -> Message | None:
        if stage == INPUT:
            if self._vector is None:
                raise RuntimeError(f"{self.name}: set_input was not called before the input stage")
            chunks, gain = self.codec.encrypt_input(self._vector)
            c = self.codec
            signed = encode_bundle(Bundle(KIND_INPUT, c.params.scheme, c.keys.key_id, self.spec.round,
                                          self.spec.dim, tuple(chunks), gain, signature=b"\0" * SIGNATURE_BYTES))
            self._sent = body_digest(signed)
            payload = signed[:-SIGNATURE_BYTES] + self.binding.sign(self._identity, self.name, self._sent)
            return Message(self.spec.round, INPUT, self.name, SERVER, KIND_CIPHERTEXTS, payload)
        if stage == DECRYPT:
            if inbound is None:
                return None
            total = self._open_sum(inbound)
            if self.mode.blind:
                self._result = total
                return None
            return Message(self.spec.round, DECRYPT, self.name, SERVER, KIND_PLAIN_SUM,
                           total.astype("<f8").tobytes())
        raise ProtocolError(SERVER, stage, f"ckks backend has no stage {stage!r}")

    def _open_sum(self, msg: Message) -> np.ndarray:
        """Check the server's reply as strictly as the server checks ours, then decrypt."""
        kind, bkind = (KIND_ENC_SUM, KIND_SUM) if self.mode.blind else (KIND_DECRYPT_REQ, KIND_DECRYPT)
        if msg.kind != kind or msg.round != self.spec.round or msg.recipient != self.name:
            raise ProtocolError(SERVER, DECRYPT, f"unexpected reply kind {msg.kind!r} or round")
        try:
            b = decode_bundle(msg.payload)
        except WireError as err:
            raise ProtocolError(SERVER, DECRYPT, f"malformed sum bundle: {err}") from None
        c = self.codec
        if (b.kind != bkind or b.key_id != c.keys.key_id or b.round != self.spec.round
                or b.dim != self.spec.dim or len(b.chunks) != c.n_chunks or b.gain is not None):
            raise ProtocolError(SERVER, DECRYPT, "sum bundle does not match this round, key or dimension")
        self._check_contributors(b)
        try:
            cts = [c.load(x, c.sum_level, f"sum chunk {i}", seeded=False) for i, x in enumerate(b.chunks)]
        except ValueError as err:
            raise ProtocolError(SERVER, DECRYPT, str(err)) from None
        self.contributors = b.names
        return c.decrypt_sum(cts)

    def _check_contributors(self, b: Bundle) -> None:
        """The sum must name at least t distinct participants, each with a valid signature on an
        input of this round, ours among them with the digest we signed. This does not prove the
        ciphertext *is* their sum (SECURITY.md: the server is trusted to add honestly)."""
        if len(set(b.names)) != len(b.names) or not set(b.names) <= set(self.spec.participants):
            raise ProtocolError(SERVER, DECRYPT, "contributor list is inconsistent with the round")
        if len(b.names) < self.spec.threshold:
            raise ProtocolError(SERVER, DECRYPT, f"sum over {len(b.names)} contributor(s), threshold is "
                                                 f"{self.spec.threshold}")
        mine = dict(zip(b.names, b.attestations, strict=True)).get(self.name)
        if mine is None or mine[:32] != self._sent:
            raise ProtocolError(SERVER, DECRYPT, "the sum does not list the input this client signed")
        for name, att in zip(b.names, b.attestations, strict=True):
            if not self.binding.verify(name, att[:32], att[32:]):
                raise ProtocolError(SERVER, DECRYPT, f"contributor {name!r} has no valid signature on an input "
                                                     "of this round")

    def result(self) -> np.ndarray | None:
        return None if self._result is None else self._result.copy()
