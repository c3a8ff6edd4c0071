"""The server's side: adds ciphertexts it cannot read.

Stage ``input``: every client's bundle is checked (framing, key id, round, dimensions, replay)
before any is added, then the chunks are summed into a fresh accumulator that replaces the
state only when every message of the stage was good. Dropouts cost nothing: the sum runs over
the ciphertexts that arrived, numerator and denominator together.

Stage ``decrypt``:
- ``server-blind``: the encrypted sum went back to every contributor with the ``input``
  replies; the server holds no plaintext aggregate, ``outcome().total`` is None.
- ``server-learns-sum``: the encrypted sum went to the round's decryptor(s) (rotating with the
  round over the sorted contributors); their reply is the only plaintext the server sees.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import tenseal.sealapi as seal

from ..base import SERVER, Message, ProtocolError, RoundAborted, SumOutcome, SumServer, SumSpec
from .binding import Binding, body_digest
from .codec import Codec
from .poly import EncryptedPoly
from .wire import KIND_DECRYPT, KIND_INPUT, KIND_SUM, Bundle, WireError, decode_bundle, encode_bundle

log = logging.getLogger(__name__)

INPUT, DECRYPT = "input", "decrypt"
STAGES = (INPUT, DECRYPT)
KIND_CIPHERTEXTS, KIND_ENC_SUM, KIND_DECRYPT_REQ, KIND_PLAIN_SUM = (
    "ciphertexts", "encrypted-sum", "decrypt-request", "plain-sum")


@dataclass(frozen=True)
class Mode:
    reveal: str  # "server-blind" | "server-learns-sum"
    weights: str  # "client" | "server"
    decryptors: int = 1

    @property
    def blind(self) -> bool:
        return self.reveal == "server-blind"


def decryptors_for(spec_round: int, contributors: list[str], k: int) -> list[str]:
    """The round's decryptor(s): rotate over the sorted contributors so no one always decrypts."""
    order = sorted(contributors)
    start = spec_round % len(order)
    return [order[(start + i) % len(order)] for i in range(min(k, len(order)))]


class CKKSServer(SumServer):
    stages = STAGES

    def __init__(self, spec: SumSpec, codec: Codec, mode: Mode, poly: EncryptedPoly | None,
                 binding: Binding) -> None:
        super().__init__(spec)
        self.binding = binding
        self._attestations: dict[str, bytes] = {}
        if codec.keys.secret_key is not None:
            raise ValueError("the server must be built from a public context (it holds a secret key)")
        self.codec, self.mode, self.poly = codec, mode, poly
        self._ev = seal.Evaluator(codec.ctx)
        self._contributors: list[str] = []
        self._digests: set[str] = set()
        self._input_done = False
        self._decryptors: list[str] = []
        self._total: np.ndarray | None = None
        self.stats: dict[str, float] = {}

    # ------------------------------------------------------------------ stage dispatch
    def process(self, stage: str, inbound: dict[str, Message]) -> dict[str, Message]:
        if stage == INPUT:
            return self._input(inbound)
        if stage == DECRYPT:
            return self._decrypt(inbound)
        raise RoundAborted(f"ckks server has no stage {stage!r}")

    @staticmethod
    def _reject(sender: str, stage: str, reason: str) -> ProtocolError:
        return ProtocolError(sender, stage, reason)

    # ------------------------------------------------------------------ input
    def _check(self, sender: str, msg: Message, seen: set[str]) -> tuple[Bundle, list[str], bytes]:
        """Everything that can be checked without SEAL; returns the bundle and chunk digests."""
        if self._input_done:
            why = "second input in the same round (replay)" if sender in self._contributors else "input stage is closed"
            raise self._reject(sender, INPUT, why)
        if msg.sender != sender or msg.recipient != SERVER or msg.stage != INPUT or msg.kind != KIND_CIPHERTEXTS:
            raise self._reject(sender, INPUT, f"unexpected message kind {msg.kind!r} or routing")
        if msg.round != self.spec.round:
            raise self._reject(sender, INPUT, f"message for round {msg.round}, this is round {self.spec.round}")
        if sender not in self.spec.participants:
            raise self._reject(sender, INPUT, "not a participant of this round")
        try:
            b = decode_bundle(msg.payload)
        except WireError as err:
            raise self._reject(sender, INPUT, f"malformed bundle: {err}") from None
        c = self.codec
        if b.kind != KIND_INPUT or b.scheme != c.params.scheme or b.names:
            raise self._reject(sender, INPUT, "bundle is not a client input for this scheme")
        body = body_digest(msg.payload)
        if not b.signature or not self.binding.verify(sender, body, b.signature):
            raise self._reject(sender, INPUT, "input is not signed by the sender's roster key for this round "
                                              "(round, sender and round parameters are signed)")
        if b.key_id != c.keys.key_id:
            raise self._reject(sender, INPUT, "ciphertexts under another federation key (key id mismatch)")
        if b.round != self.spec.round or b.dim != self.spec.dim:
            raise self._reject(sender, INPUT, f"bundle for round {b.round} dim {b.dim}, expected "
                                              f"round {self.spec.round} dim {self.spec.dim}")
        if len(b.chunks) != c.n_chunks:
            raise self._reject(sender, INPUT, f"{len(b.chunks)} ciphertexts, expected {c.n_chunks}")
        if (b.gain is not None) != c.weights_on_server:
            raise self._reject(sender, INPUT, "gain ciphertext presence does not match weights mode")
        digest = hashlib.sha256(msg.payload).hexdigest()
        if digest in self._digests or digest in seen:
            raise self._reject(sender, INPUT, "identical payload already received (replay)")
        blobs = list(b.chunks) + ([b.gain] if b.gain is not None else [])
        digests = [hashlib.sha256(x).hexdigest() for x in blobs]
        if len(set(digests)) != len(digests) or seen.intersection(digests) or self._digests.intersection(digests):
            raise self._reject(sender, INPUT, "a ciphertext was already received (replay)")
        return b, [digest, *digests], body + b.signature

    def _input(self, inbound: dict[str, Message]) -> dict[str, Message]:
        started = time.perf_counter()
        checked: dict[str, Bundle] = {}
        attestations: dict[str, bytes] = {}
        seen: set[str] = set()
        for sender, msg in sorted(inbound.items()):
            b, digests, attestations[sender] = self._check(sender, msg, seen)
            checked[sender] = b
            seen.update(digests)
        if len(checked) < self.spec.threshold:
            raise RoundAborted(f"{len(checked)} inputs arrived, threshold is {self.spec.threshold}")
        acc: list[Any] | None = None
        poly_s = 0.0
        for sender, b in checked.items():
            try:
                cts = [self.codec.load(x, self.codec.input_level, f"chunk {i}") for i, x in enumerate(b.chunks)]
                gain = self.codec.load(b.gain, self.codec.gain_level, "gain") if b.gain is not None else None
            except ValueError as err:
                raise self._reject(sender, INPUT, str(err)) from None
            if gain is not None:
                assert self.poly is not None
                t0 = time.perf_counter()
                weight = self.poly.evaluate(gain)
                poly_s += time.perf_counter() - t0
                cts = [self._times(ct, weight) for ct in cts]
            acc = cts if acc is None else self._add(acc, cts)
        contributors = sorted(checked)
        assert acc is not None
        if self.codec.weights_on_server:
            acc = [self._finish_product(ct) for ct in acc]
        # Commit: only now does the round state change.
        self._contributors, self._input_done = contributors, True
        self._attestations = attestations
        self._digests |= seen
        self.stats.update(bytes_in=float(sum(len(m.payload) for m in inbound.values())),
                          sum_seconds=time.perf_counter() - started, poly_seconds=poly_s,
                          contributors=float(len(contributors)))
        return self._replies(acc)

    def _add(self, acc: list[Any], cts: list[Any]) -> list[Any]:
        for a, ct in zip(acc, cts, strict=True):
            self._ev.add_inplace(a, ct)
        return acc

    def _times(self, ct: Any, weight: Any) -> Any:
        out = seal.Ciphertext()
        self._ev.multiply(ct, weight, out)  # size 3; relinearised once, after the sum
        return out

    def _finish_product(self, ct: Any) -> Any:
        assert self.poly is not None
        self._ev.relinearize_inplace(ct, self.poly.rk)
        self._ev.rescale_to_next_inplace(ct)
        return ct

    def _replies(self, acc: list[Any]) -> dict[str, Message]:
        c = self.codec
        blobs = tuple(c.dump(ct) for ct in acc)
        del acc  # the server keeps no aggregate, encrypted or not, beyond this call
        if self.mode.blind:
            recipients, kind, bkind = self._contributors, KIND_ENC_SUM, KIND_SUM
        else:
            self._decryptors = decryptors_for(self.spec.round, self._contributors, self.mode.decryptors)
            recipients, kind, bkind = self._decryptors, KIND_DECRYPT_REQ, KIND_DECRYPT
        payload = encode_bundle(Bundle(bkind, c.params.scheme, c.keys.key_id, self.spec.round,
                                       self.spec.dim, blobs, None, tuple(self._contributors),
                                       tuple(self._attestations[n] for n in self._contributors)))
        self.stats["bytes_out_each"] = float(len(payload))
        return {r: Message(self.spec.round, INPUT, SERVER, r, kind, payload) for r in recipients}

    # ------------------------------------------------------------------ decrypt
    def _decrypt(self, inbound: dict[str, Message]) -> dict[str, Message]:
        if not self._input_done:
            raise RoundAborted("decrypt stage before any input was summed")
        sums: dict[str, bytes] = {}
        for sender, msg in sorted(inbound.items()):
            if self.mode.blind or sender not in self._decryptors:
                raise self._reject(sender, DECRYPT, "not asked to decrypt in this round")
            if (msg.kind != KIND_PLAIN_SUM or msg.round != self.spec.round or msg.sender != sender
                    or msg.stage != DECRYPT):
                raise self._reject(sender, DECRYPT, f"unexpected message kind {msg.kind!r} or round")
            if len(msg.payload) != 8 * self.spec.dim:
                raise self._reject(sender, DECRYPT,
                                   f"plain sum has {len(msg.payload)} bytes, expected {8 * self.spec.dim}")
            if not np.all(np.isfinite(np.frombuffer(msg.payload, dtype="<f8"))):
                raise self._reject(sender, DECRYPT, "plain sum has non-finite values")
            sums[sender] = msg.payload
        if self.mode.blind:
            return {}
        if not sums:
            raise RoundAborted(f"no decryptor answered (asked {', '.join(self._decryptors)})")
        if len(set(sums.values())) > 1:
            raise RoundAborted("decryptors returned different sums")
        self._total = np.frombuffer(next(iter(sums.values())), dtype="<f8").copy()
        return {}

    def outcome(self) -> SumOutcome:
        if not self._input_done:
            raise RoundAborted("no input was summed")
        total = None if self.mode.blind else self._total
        if not self.mode.blind and total is None:
            raise RoundAborted("the decrypt stage did not run")
        return SumOutcome(tuple(self._contributors), None if total is None else total.copy(),
                          stats=dict(self.stats))
