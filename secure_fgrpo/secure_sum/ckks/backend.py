"""``make_backend("ckks", options)``: options from the config's ``[secure_sum]`` table.

Options (every other key is refused, by name):

- ``reveal``: ``"server-learns-sum"`` (default; one rotating decryptor returns the two sums)
  or ``"server-blind"`` (every contributor decrypts; the server learns nothing, not even the sum).
  ``scheme = "ckks"`` (and so ``weights = "server"``) is refused with server-learns-sum: an
  approximate CKKS decryption handed to the server reveals the secret key (Li and Micciancio,
  2021; issue 13). BFV decrypts exactly and is not affected.
- ``roster`` (path): the institutions' public keys as ``secure-fgrpo keys roster`` writes them
  (identity.py; a version-1 roster of Ed25519 keys only is still read). Without it, :meth:`setup`
  creates an identity per client and the roster. Every input is signed (binding.py).
- ``weights``: ``"client"`` (default; clients send ``[e_i·Δ_i, e_i]``) or ``"server"`` (clients
  send ``[n^α·Δ, n^α, g]``; the server evaluates exp(g/τ) under encryption). Needs ``tau`` and
  ``gain_clip``.
- ``scheme``: ``"bfv"`` (default for client weights) or ``"ckks"``.
- ``params``: a preset name (``bfv-4096``, ``ckks-4096``, ``nvflare``); derived when omitted.
- ``tau``, ``gain_clip``: τ and G of the gain (weights = server only).
- ``poly_degree``: degree of the exp approximation (default 15).
- ``decryptors``: how many rotating decryptors receive the sum in server-learns-sum (default 1).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..base import Backend, SumClient, SumServer, SumSpec
from ..identity import ensure_party, load_identity, load_roster, public_bytes, write_roster
from .binding import Binding, round_digest
from .client import CKKSClient
from .codec import Codec
from .keys import SUBDIR, KeyMaterial, client_dir, init_keys, load_keys, server_dir
from .params import ParamSet, resolve
from .poly import EncryptedPoly, ExpApprox
from .server import Mode

log = logging.getLogger(__name__)

REVEALS = ("server-learns-sum", "server-blind")
WEIGHTS = ("client", "server")
OPTIONS = ("reveal", "weights", "scheme", "params", "tau", "gain_clip", "poly_degree", "decryptors", "roster")
ROSTER_FILE = "roster.json"


class CKKSBackend(Backend):
    """Homomorphic secure sum (TenSEAL/SEAL): the server holds no secret key."""

    name = "ckks"

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"secure_sum.options: unknown option(s) for ckks: {', '.join(unknown)} "
                             f"(known: {', '.join(OPTIONS)})")
        reveal = options.get("reveal", "server-learns-sum")
        weights = options.get("weights", "client")
        if reveal not in REVEALS:
            raise ValueError(f"secure_sum.options.reveal: {reveal!r} is not one of {', '.join(REVEALS)}")
        if weights not in WEIGHTS:
            raise ValueError(f"secure_sum.options.weights: {weights!r} is not one of {', '.join(WEIGHTS)}")
        decryptors = options.get("decryptors", 1)
        if isinstance(decryptors, bool) or not isinstance(decryptors, int) or decryptors < 1:
            raise ValueError(f"secure_sum.options.decryptors must be an integer >= 1, got {decryptors!r}")
        degree = options.get("poly_degree", 15)
        if isinstance(degree, bool) or not isinstance(degree, int) or not 1 <= degree <= 31:
            raise ValueError(f"secure_sum.options.poly_degree must be an integer in [1, 31], got {degree!r}")
        self.approx: ExpApprox | None = None
        self.tau = self.gain_clip = 0.0
        if weights == "server":
            for key in ("tau", "gain_clip"):
                v = options.get(key)
                if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                    raise ValueError(f"secure_sum.options.{key}: weights = 'server' needs a number > 0, got {v!r}")
            self.tau, self.gain_clip = float(options["tau"]), float(options["gain_clip"])
            self.approx = ExpApprox.fit(self.gain_clip, self.tau, degree)
            log.info("exp(g/tau) approximation: degree %d, max relative error %.2e",
                     degree, self.approx.max_rel_error)
        else:
            stray = sorted(k for k in ("tau", "gain_clip", "poly_degree") if k in options)
            if stray:
                raise ValueError(f"secure_sum.options: option(s) {', '.join(stray)} only apply to weights = 'server'")
        self.params: ParamSet = resolve(options.get("params"), options.get("scheme"), weights, degree)
        if self.params.scheme == "ckks" and reveal == "server-learns-sum":
            raise ValueError("secure_sum.options.scheme: CKKS with reveal = 'server-learns-sum' is refused: the "
                             "server would receive an approximate decryption, from which it solves for the secret "
                             "key (Li and Micciancio 2021). Use reveal = 'server-blind' with CKKS (weights = "
                             "'server' needs it), or scheme = 'bfv' (exact decryption) to let the server learn the sum")
        self.degree = degree
        self.mode = Mode(reveal, weights, decryptors)
        roster = options.get("roster")
        if roster is not None and not isinstance(roster, str | Path):
            raise ValueError(f"secure_sum.options.roster must be a path, got {roster!r}")
        self.roster_path: Path | None = Path(roster) if roster is not None else None
        self._roster: dict[str, Ed25519PublicKey] | None = load_roster(self.roster_path) if self.roster_path else None

    @property
    def weights_on_server(self) -> bool:
        return self.mode.weights == "server"

    @property
    def server_learns_sum(self) -> bool:
        return self.mode.reveal != "server-blind"

    def setup(self, run_dir: Path, clients: list[str]) -> None:
        """Play the key set-up party by party under ``run_dir`` (or reuse matching keys): each
        client's identity in its own folder, the secret context sealed from one client to the
        others (ckks/keys.py); the roster of public keys unless one is configured."""
        init_keys(Path(run_dir), list(clients), self.params, relin=self.weights_on_server)
        if self._roster is not None:
            missing = sorted(set(clients) - set(self._roster))
            if missing:
                raise ValueError(f"secure_sum.options.roster {self.roster_path} has no key for {', '.join(missing)}")
            return
        keys = {n: ensure_party(client_dir(run_dir, n), n).entry() for n in clients}
        self.roster_path = server_dir(run_dir) / SUBDIR / ROSTER_FILE
        write_roster(self.roster_path, keys)
        self._roster = load_roster(self.roster_path)

    def _binding(self, spec: SumSpec, keys: KeyMaterial) -> Binding:
        if self._roster is None:
            raise ValueError("secure_sum: the ckks backend signs every input and needs a roster: set "
                             "secure_sum.options.roster or call setup(run_dir, clients) first")
        missing = [p for p in spec.participants if p not in self._roster]
        if missing:
            raise ValueError(f"secure_sum.options.roster has no key for participant(s) {', '.join(missing)}")
        mode = {"reveal": self.mode.reveal, "weights": self.mode.weights, "decryptors": self.mode.decryptors,
                "tau": float(self.tau).hex(), "gain_clip": float(self.gain_clip).hex(),
                "poly_degree": self.degree if self.approx else 0}
        return Binding(spec.round, round_digest(spec, self.params, keys.key_id, mode), self._roster)

    def _codec(self, keys: Any, spec: SumSpec) -> Codec:
        a = self.approx.a if self.approx else 0.0
        return Codec(keys, self.params, spec, weights_on_server=self.weights_on_server,
                     gain_clip=self.gain_clip, exp_shift=a)

    def server(self, spec: SumSpec, state_dir: Path) -> SumServer:
        from .server import CKKSServer

        keys = load_keys(Path(state_dir), self.params, secret=False, relin=self.weights_on_server)
        codec = self._codec(keys, spec)
        poly = None
        if self.approx is not None:
            poly = EncryptedPoly(codec.ctx, keys.relin_keys, self.approx, codec.gain_level.scale)
        return CKKSServer(spec, codec, self.mode, poly, self._binding(spec, keys))

    def client(self, name: str, spec: SumSpec, state_dir: Path) -> SumClient:
        keys = load_keys(Path(state_dir), self.params, secret=True, relin=False)
        binding = self._binding(spec, keys)
        identity = load_identity(Path(state_dir))
        if name not in binding.roster or public_bytes(identity) != binding.roster[name].public_bytes_raw():
            raise ValueError(f"{name}: the identity key in {Path(state_dir)} does not match its roster entry")
        return CKKSClient(name, spec, self._codec(keys, spec), self.mode, binding, identity,
                          tau=self.tau or 1.0, gain_clip=self.gain_clip)

    def server_dir(self, run_dir: Path) -> Path:
        return server_dir(run_dir)

    def client_dir(self, run_dir: Path, name: str) -> Path:
        return client_dir(run_dir, name)
