"""``make_backend("masked", options)``: SecAgg+ with options from the config's ``[secure_sum]``.

Options (any other key is refused, by name):

- ``signed`` (bool, default true): sign key advertisements and survivor-set acknowledgements
  with each institution's long-term Ed25519 key, verified against a roster. Needs ``roster``
  or :meth:`MaskedBackend.setup` (which creates identities and a roster for a simulation).
  ``false`` runs unsigned: safe against an honest-but-curious server only.
- ``roster`` (path): JSON ``{"version": 1, "clients": {name: hex Ed25519 public key}}``.
- ``degree`` (int): neighbour-graph degree override (even, or n - 1); default derived by
  params.py from n and the server's ``policy`` (γ, δ, σ, η). Each client's own policy decides
  whether an override is safe (a refusal names the policy key).
- ``policy`` (SecurityPolicy or table): the γ, δ, σ, η the server sizes the graph for, and the
  default policy of every client (the config's ``[security]``).
- ``client_policies`` ({name: SecurityPolicy or table}): an institution's own policy, over
  ``policy`` (the config's ``clients.security``).
- ``modulus_bits`` (32 or 64, default 32): word size on the wire.
- ``prg`` (``"aes-ctr"`` default, or ``"chacha20"``): the mask keystream.
- ``scale`` (float): explicit fixed-point scale (quanta per unit); refused if the sum could wrap.
- ``max_error`` (float): refuse rounds whose quantisation bound would exceed it.

``client``/``server`` take an optional public ``noise`` (context.IntegerNoise) for client-level
Skellam noise; the federation runner passes the same one to every party of the round.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..base import Backend, SumClient, SumServer, SumSpec
from .client import MaskedClient
from .context import IntegerNoise, Params, RoundContext
from .fixedpoint import BITS
from .keys import SUBDIR, load_identity, load_or_create_identity, load_roster, public_bytes, write_roster
from .policy import PolicyRefusal, SecurityPolicy
from .server import MaskedServer

log = logging.getLogger(__name__)

OPTIONS = ("signed", "roster", "degree", "modulus_bits", "prg", "scale", "max_error", "policy",
           "client_policies")
ROSTER_FILE = "roster.json"


def client_state_dir(run_dir: Path, name: str) -> Path:
    """Where the federation runner keeps a client's keys (the ``state_dir`` it passes)."""
    return Path(run_dir) / "clients" / name / "keys"


def server_state_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "server" / "keys"


def _number(key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"secure_sum.options.{key} must be a number > 0, got {value!r}")
    return float(value)


def _policy(value: Any, base: SecurityPolicy | None = None) -> SecurityPolicy:
    if value is None:
        return base or SecurityPolicy()
    if isinstance(value, SecurityPolicy):
        return value
    if isinstance(value, dict):
        return SecurityPolicy.from_dict(value, base)
    raise ValueError(f"security: expected a table of policy keys, got {value!r}")


class MaskedBackend(Backend):
    """SecAgg+ secure sum: the server learns the sum over the contributors, nothing else."""

    name = "masked"

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise ValueError(f"secure_sum.options: unknown option(s) for masked: {', '.join(unknown)} "
                             f"(known: {', '.join(OPTIONS)})")
        signed = options.get("signed", True)
        if not isinstance(signed, bool):
            raise ValueError(f"secure_sum.options.signed must be true or false, got {signed!r}")
        roster = options.get("roster")
        if roster is not None and not isinstance(roster, str | Path):
            raise ValueError(f"secure_sum.options.roster must be a path, got {roster!r}")
        if roster is not None and not signed:
            raise ValueError("secure_sum.options.roster is set but signed = false: drop one of them")
        bits = options.get("modulus_bits", 32)
        if bits not in BITS or isinstance(bits, bool):
            raise ValueError(f"secure_sum.options.modulus_bits must be one of {BITS}, got {bits!r}")
        degree = options.get("degree")
        if degree is not None and (isinstance(degree, bool) or not isinstance(degree, int) or degree < 1):
            raise ValueError(f"secure_sum.options.degree must be an integer >= 1, got {degree!r}")
        policy = _policy(options.get("policy"))
        self.client_policies = {n: _policy(p, policy) for n, p in dict(options.get("client_policies") or {}).items()}
        self.params = Params(modulus_bits=bits, prg=options.get("prg", "aes-ctr"), degree=degree,
                             scale=_number("scale", options.get("scale")),
                             max_error=_number("max_error", options.get("max_error")), proposal=policy)
        self.signed = signed
        self.roster_path: Path | None = Path(roster) if roster is not None else None
        self._roster: dict[str, Ed25519PublicKey] | None = None
        if self.roster_path is not None:
            self._roster = load_roster(self.roster_path)

    def setup(self, run_dir: Path, clients: list[str]) -> None:
        """Simulation set-up: an identity per client (kept if present) and the roster of their
        public keys. With a configured roster, only check that it covers every client."""
        if not self.signed:
            log.warning("secure_sum.options.signed = false: advertisements are not authenticated; the "
                        "masked sum is then private only against an honest-but-curious server")
            return
        if self._roster is not None:
            missing = sorted(set(clients) - set(self._roster))
            if missing:
                raise ValueError(f"secure_sum.options.roster {self.roster_path} has no key for {', '.join(missing)}")
            return
        keys = {n: public_bytes(load_or_create_identity(client_state_dir(run_dir, n))) for n in clients}
        self.roster_path = server_state_dir(run_dir) / SUBDIR / ROSTER_FILE
        write_roster(self.roster_path, keys)
        self._roster = load_roster(self.roster_path)

    def _context(self, spec: SumSpec, noise: IntegerNoise | None) -> RoundContext:
        if self.signed and self._roster is None:
            raise ValueError("secure_sum.options.signed = true needs a roster: set secure_sum.options.roster, call "
                             "setup(run_dir, clients) first, or set signed = false")
        return RoundContext.build(spec, self.params, self._roster if self.signed else None, noise)

    def server(self, spec: SumSpec, state_dir: Path, noise: IntegerNoise | None = None) -> SumServer:
        """The server proposes only rounds its own policy (``policy``) admits."""
        ctx = self._context(spec, noise)
        try:
            self.params.proposal.admit(spec, ctx.graph_params, "setup")
        except PolicyRefusal as err:
            raise ValueError(f"round {spec.round}: {err.reason}") from None
        return MaskedServer(ctx)

    def client(self, name: str, spec: SumSpec, state_dir: Path,
               noise: IntegerNoise | None = None) -> SumClient:
        ctx = self._context(spec, noise)
        identity: Ed25519PrivateKey | None = None
        if ctx.roster is not None:
            identity = load_identity(Path(state_dir))
            if public_bytes(identity) != ctx.roster[name].public_bytes_raw():
                raise ValueError(f"{name}: the identity key in {Path(state_dir) / SUBDIR} does not match "
                                 f"its roster entry")
        return MaskedClient(name, ctx, identity, self.client_policies.get(name, self.params.proposal))
