"""``secure-fgrpo deploy certs | node-key | identity | roster``: the files a real deployment
needs, written with ``cryptography``. cli.py calls :func:`register`; this module only builds the
sub-commands and returns what to print (cli.py is the only module that prints)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from ..secure_sum.masked.keys import identity_path, load_or_create_identity, load_roster, public_bytes, write_roster
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


def _identity(args: argparse.Namespace) -> str:
    """The institution's Ed25519 identity for the masked secure sum, and its public entry."""
    state = Path(args.state)
    existed = identity_path(state).exists()
    key = load_or_create_identity(state)
    entry = Path(args.out or state / f"{args.name}.identity.json")
    entry.write_text(json.dumps({"name": args.name, "public_key": public_bytes(key).hex()}) + "\n")
    return (f"identity {'kept' if existed else 'created'} in {identity_path(state)} (0600); public entry "
            f"{entry}: send it to the coordinator for the roster")


def _roster(args: argparse.Namespace) -> str:
    keys: dict[str, bytes] = {}
    for path in args.entries:
        try:
            doc = json.loads(Path(path).read_text())
            name, raw = doc["name"], bytes.fromhex(doc["public_key"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise ValueError(f"deploy roster: {path} is not an identity entry ({err.__class__.__name__})") from None
        if name in keys:
            raise ValueError(f"deploy roster: {path} repeats the name {name!r}")
        keys[name] = raw
    out = Path(args.out)
    if out.exists():
        raise ValueError(f"deploy roster: {out} already exists; remove it yourself or choose another --out")
    write_roster(out, keys)
    load_roster(out)  # validate what was written (key lengths)
    return f"roster {out} with {', '.join(sorted(keys))}: copy it to the coordinator and to every SuperNode"


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
    i = dsub.add_parser("identity", help="an institution's Ed25519 identity for the masked secure sum")
    i.add_argument("--state", required=True, help="the institution's private state folder")
    i.add_argument("--name", required=True)
    i.add_argument("--out", default="", help="public entry file (default STATE/NAME.identity.json)")
    i.set_defaults(fn=run(_identity))
    r = dsub.add_parser("roster", help="the public roster from the institutions' identity entries")
    r.add_argument("--out", required=True)
    r.add_argument("entries", nargs="+")
    r.set_defaults(fn=run(_roster))
