"""``secure-fgrpo audit RUN``: inventory, payload checks, attacks, DP audit -> RUN/audit/.

Reads ``RUN/server/`` and the public ``RUN/config.json`` only (see view.py). The attacks are
scored in a simulation of the run's own backend and options (simulate.py), where the truth is
known to the harness; the real run's payloads feed the inventory, the checks, and the list of
what the server can read from each message. The DP section (dp_section.py) runs the run's own
client-level mechanism with canaries (dp_canary.py).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..fileio import write_private
from .attacks import AttackResult, gain_inference, message_membership, update_recovery
from .checks import check_archive, check_ckks, check_masked_uniform
from .dp_section import dp_section
from .estimates import INPUT_KINDS, estimate_inputs
from .inventory import build_inventory
from .keyscan import KnownSecret, scan_key_material
from .report_html import render
from .simulate import SimShape, sim_shape, simulate_federation
from .view import ServerView, load_view

log = logging.getLogger(__name__)


def _server_reads(view: ServerView) -> list[dict]:
    """What the server reads directly out of each input message of the real run."""
    out = []
    for m in estimate_inputs(view):
        if m.kind == "vector":
            w = float(m.vector[-1])
            out.append({"round": m.round, "sender": m.sender, "kind": m.kind, "readable": True, "weight": w,
                        "update_norm": float(np.linalg.norm(m.vector[:-1]) / w) if w > 0 else None})
        else:
            out.append({"round": m.round, "sender": m.sender, "kind": m.kind, "readable": False})
    return out


def run_shape(view: ServerView) -> SimShape:
    """The run's clients, rounds and coordinates per message, as the server's view shows them."""
    per_round = [len({e.sender for e in view.entries if e.round == r and e.kind in INPUT_KINDS}) for r in view.rounds]
    n_clients = max(per_round, default=0) or None  # the participants of a round, as the server saw them
    _, options = view.backend_options()
    extra = 1 if options.get("weights") == "server" else 0  # [n^a·Δ, n^a, g] carries one more
    dims = [len(m.vector) - extra for m in estimate_inputs(view)]
    return sim_shape(n_clients, len(view.rounds) or None, max(dims) if dims else None)


def _attacks(view: ServerView, seed: int) -> tuple[dict, list[AttackResult]]:
    backend, options = view.backend_options()
    if backend not in ("plaintext", "masked", "ckks"):
        return {"skipped": f"backend {backend!r} cannot be simulated"}, []
    shape = run_shape(view)
    with tempfile.TemporaryDirectory(prefix="sfgrpo-audit-sim-") as tmp:
        truth = simulate_federation(Path(tmp), backend, options, seed=seed, **shape.simulated)
        est = estimate_inputs(load_view(Path(tmp)))
        results = [update_recovery(est, truth), gain_inference(est, truth), message_membership(est, truth, seed=seed)]
    return {"backend": backend, "options": {k: v for k, v in options.items() if k != "roster"}, "seed": seed,
            **shape.simulated, "run_shape": shape.run, "shape_differs": shape.differs}, results


def audit_run(run_dir: Path, out_dir: Path | None = None, *, attacks: bool = True,
              known_secrets: list[KnownSecret] | None = None, seed: int = 0) -> dict:
    """Audit ``run_dir`` and write ``report.json`` and ``report.html`` to ``out_dir``
    (default ``RUN/audit``). Returns the report as a dict."""
    run_dir = Path(run_dir)
    view = load_view(run_dir)
    inv = build_inventory(view)
    checks = [check_archive(view), check_masked_uniform(view), check_ckks(view),
              scan_key_material(view.server_dir, known_secrets)]
    dp, dp_flags = dp_section(view, seed)
    harness, results = _attacks(view, seed) if attacks else ({"skipped": "--no-attacks"}, [])
    flags = inv.flags + dp_flags
    configured, _ = view.backend_options()
    report = {
        "run": str(run_dir), "reads": ["server/", "config.json"],
        "backend": {"configured": configured, "inferred_from_messages": inv.backend},
        "inventory": {"rows": [asdict(r) for r in inv.rows], "computable": inv.computable,
                      "metric_keys": inv.metric_keys, "epsilon": inv.epsilon,
                      "epsilon_by_round": {k: {str(r): v for r, v in d.items()}
                                           for k, d in inv.epsilon_by_round.items()}},
        "flags": [asdict(f) for f in flags],
        "checks": [asdict(c) for c in checks],
        "server_reads": _server_reads(view),
        "attacks": {"harness": harness, "results": [asdict(a) for a in results]},
        "dp": dp,
        "summary": {
            "per_client_plaintext": any(f.severity == "high" for f in inv.flags),
            "high_flags": sum(f.severity == "high" for f in flags),
            "warnings": sum(f.severity == "warn" for f in flags),
            "checks_failed": [c.name for c in checks if c.status == "fail"],
            "attacks": {a.name: a.verdict for a in results},
        },
    }
    out_dir = Path(out_dir) if out_dir else run_dir / "audit"
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = _clean(report)
    assert isinstance(clean, dict)  # _clean keeps a dict a dict
    # 0600: with the plaintext backend the report lists what the server read of each client.
    _write_private(out_dir / "report.json", json.dumps(clean, indent=1, allow_nan=False))
    _write_private(out_dir / "report.html", render(clean))
    log.info("audit of %s written to %s", run_dir, out_dir)
    return clean


def _write_private(path: Path, text: str) -> None:
    write_private(path, text.encode("utf-8"))


def _clean(x: object) -> object:
    """Strict JSON: numpy scalars to Python, non-finite floats to strings ("inf", "nan")."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x
