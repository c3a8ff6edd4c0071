"""``secure-fgrpo keys init | export | roster | ckks-seal | ckks-open``: each party's own key
custody, one party per command (SECURITY.md, Key custody). A CLI module: it prints."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

if TYPE_CHECKING:
    from .secure_sum.identity import RosterEntry

console = Console()  # like cli.py's: writes to whatever sys.stdout is at print time


def cmd_keys_init(args: argparse.Namespace) -> int:
    """One party's identity, made on its own machine: private keys stay in --out (0600 files,
    0700 folder); only the public keys and their fingerprint are printed."""
    from .secure_sum.identity import create_party

    entry = create_party(Path(args.out), args.party).entry()
    console.print(
        f"identity of {entry.name} created in {Path(args.out) / 'identity'} (private: 0600 files, 0700 folder)",
        markup=False,
    )
    _print_entry(entry)
    console.print(
        f"next: `secure-fgrpo keys export --party-dir {args.out}` and send the entry to the coordinator", markup=False
    )
    return 0


def _print_entry(entry: RosterEntry) -> None:
    console.print(
        f"  ed25519 (signing) public key: {entry.signing.hex()}\n"
        f"  x25519 (sealing) public key:  {entry.sealing.hex() if entry.sealing else '-'}\n"
        f"  fingerprint of {entry.name}: {entry.fingerprint()}",
        soft_wrap=True,
        markup=False,
    )


def _refuse_existing(path: Path, what: str) -> Path:
    if path.exists():
        raise ValueError(f"{what}: {path} already exists; remove it yourself or choose another --out")
    return path


def cmd_keys_export(args: argparse.Namespace) -> int:
    """The party's public roster entry (checked against its private keys), to send out of band."""
    from .secure_sum.identity import load_party, write_entry

    entry = load_party(Path(args.party_dir)).entry()
    out = _refuse_existing(Path(args.out or f"{entry.name}.entry.json"), "keys export")
    write_entry(out, entry)
    console.print(
        f"public entry {out} (public keys only): send it to the coordinator; read the fingerprint "
        "to them over another channel",
        markup=False,
    )
    _print_entry(entry)
    return 0


def cmd_keys_roster(args: argparse.Namespace) -> int:
    """Assemble the roster from the parties' entries; print every fingerprint to compare."""
    from .secure_sum.identity import assemble_roster

    entries = assemble_roster(Path(args.out), [Path(p) for p in args.entries])
    console.print(f"roster {args.out}: {len(entries)} parties. Each must confirm its fingerprint out of band:",
                  markup=False)
    for name in sorted(entries):
        console.print(f"  {name}: {entries[name].fingerprint()}", soft_wrap=True, markup=False)
    return 0


def cmd_keys_ckks_seal(args: argparse.Namespace) -> int:
    """One institution makes the CKKS secret context and seals it to every other party."""
    from .secure_sum.ckks.keys import META_FILE, seal_secret
    from .secure_sum.ckks.params import PRESETS
    from .secure_sum.identity import load_roster_entries

    out = Path(args.out)
    _refuse_existing(out / META_FILE, "keys ckks-seal")
    roster = load_roster_entries(Path(args.roster))
    key_id = seal_secret(Path(args.party_dir), roster, PRESETS[args.params], args.relin, out)
    console.print(
        f"ckks key {key_id.hex()} ({args.params}): secret context in {args.party_dir}/ckks (0600); in {out}: "
        f"public_context.bin + meta.json for the server, sealed/<name>.json for each other party "
        "(safe to pass through the server; no secret in clear)",
        markup=False,
    )
    return 0


def cmd_keys_ckks_open(args: argparse.Namespace) -> int:
    """A party opens the envelope sealed to it into its own folder."""
    from .secure_sum.ckks.keys import open_sealed
    from .secure_sum.identity import load_roster_entries

    key_id = open_sealed(Path(args.party_dir), load_roster_entries(Path(args.roster)), Path(args.envelope))
    console.print(f"ckks key {key_id.hex()} opened into {args.party_dir}/ckks (0600)", markup=False)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``keys`` commands to the CLI's parser."""
    k = sub.add_parser("keys", help="key custody")
    ksub = k.add_subparsers(dest="keys_cmd", required=True)
    ki = ksub.add_parser("init", help="create ONE party's identity on its own machine")
    ki.add_argument("--party", required=True, help="this institution's name in the roster")
    ki.add_argument("--out", required=True, help="its private key folder (the state_dir it runs with)")
    ki.set_defaults(fn=cmd_keys_init)
    ke = ksub.add_parser("export", help="write this party's public roster entry")
    ke.add_argument("--party-dir", required=True)
    ke.add_argument("--out", default="", help="entry file (default NAME.entry.json)")
    ke.set_defaults(fn=cmd_keys_export)
    kr = ksub.add_parser("roster", help="assemble the roster from entries; print fingerprints")
    kr.add_argument("entries", nargs="+")
    kr.add_argument("--out", required=True)
    kr.set_defaults(fn=cmd_keys_roster)
    ks = ksub.add_parser("ckks-seal", help="make the CKKS secret and seal it to the other parties")
    ks.add_argument("--party-dir", required=True)
    ks.add_argument("--roster", required=True)
    ks.add_argument("--out", required=True, help="folder for the public context and the sealed envelopes")
    ks.add_argument("--params", default="bfv-4096", choices=["bfv-4096", "ckks-4096", "nvflare"])
    ks.add_argument("--relin", action="store_true", help="give the server relinearisation keys (weights = server)")
    ks.set_defaults(fn=cmd_keys_ckks_seal)
    ko = ksub.add_parser("ckks-open", help="open the CKKS secret sealed to this party")
    ko.add_argument("--party-dir", required=True)
    ko.add_argument("--roster", required=True)
    ko.add_argument("envelope")
    ko.set_defaults(fn=cmd_keys_ckks_open)
