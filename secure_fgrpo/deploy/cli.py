"""``secure-fgrpo deploy certs | node-key``: the transport's files a real deployment needs (TLS,
SuperNode authentication), written with ``cryptography``. Institutions' identities and the
roster are ``secure-fgrpo keys init | export | roster`` only (one format, secure_sum/identity.py);
the old ``deploy identity | roster`` answer with one line pointing there. cli.py calls
:func:`register`; this module only builds the sub-commands and returns what to print."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from .certs import make_certs
from .node_keys import make_node_key


def _certs(args: argparse.Namespace) -> str:
    p = make_certs(Path(args.out), args.host, args.days)
    return (f"CA {p.ca_cert} (give it to every SuperNode and to flwr), SuperLink certificate "
            f"{p.server_cert}, private keys {p.ca_key} and {p.server_key} (0600; keep them at the coordinator)")


def _node_key(args: argparse.Namespace) -> str:
    p = make_node_key(Path(args.out), args.name)
    return (f"SuperNode key {p.private} (0600; stays at {args.name}); public key {p.public}: the "
            f"coordinator runs `flwr supernode register {p.public}`")


_MOVED = {
    "identity": "deploy identity is gone: each institution runs `secure-fgrpo keys init --party NAME --out STATE` "
                "on its own machine, then `secure-fgrpo keys export --party-dir STATE`",
    "roster": "deploy roster is gone: assemble the roster with `secure-fgrpo keys roster ENTRY... --out roster.json` "
              "(it prints every fingerprint to compare out of band)",
}


def _moved(args: argparse.Namespace) -> str:
    """Refuse, in one line, naming the ``keys`` command that replaced it; write nothing."""
    raise ValueError(_MOVED[args.deploy_cmd])


def register(sub: argparse._SubParsersAction, emit: Callable[[str], object]) -> None:
    """Add ``deploy`` to the top-level parser; each step's one-line result goes to ``emit``
    (cli.py passes its console)."""

    def run(step: Callable[[argparse.Namespace], str]) -> Callable[[argparse.Namespace], int]:
        def fn(args: argparse.Namespace) -> int:
            emit(step(args))
            return 0
        return fn

    d = sub.add_parser("deploy", help="certificates and keys for a Flower deployment")
    dsub = d.add_subparsers(dest="deploy_cmd", required=True)
    c = dsub.add_parser("certs", help="a CA and the SuperLink's TLS certificate")
    c.add_argument("--out", required=True)
    c.add_argument("--host", action="append", required=True,
                   help="a name or IP the SuperNodes dial to reach the SuperLink (repeatable)")
    c.add_argument("--days", type=int, default=365)
    c.set_defaults(fn=run(_certs))
    k = dsub.add_parser("node-key", help="a SuperNode authentication key (ECDSA P-384, OpenSSH)")
    k.add_argument("--out", required=True)
    k.add_argument("--name", required=True)
    k.set_defaults(fn=run(_node_key))
    # The old commands take their old arguments and answer one line pointing at `keys`.
    for old, use in (("identity", "keys init / keys export"), ("roster", "keys roster")):
        m = dsub.add_parser(old, help=f"moved: use `secure-fgrpo {use}`")
        for flag in ("--state", "--name", "--out"):
            m.add_argument(flag, default="")
        m.add_argument("entries", nargs="*")
        m.set_defaults(fn=run(_moved))
