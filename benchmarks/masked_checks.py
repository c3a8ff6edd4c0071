"""Cost of the masked backend's new checks (issue 13), measured one by one, and the secure-sum
rows re-run beside the previous figures.

    nice -n 10 .venv/bin/python benchmarks/masked_checks.py --before OLD.json --after NEW.json

OLD.json / NEW.json are benchmarks/secure_sum.py outputs (before and after this change). Writes
results/masked_checks.json and .md: per client and per round, the thread CPU time of each new
check (policy, graph from every advertisement, advertisement signatures, signed sealed shares,
the signed masked input at 1M parameters), then the masked rows of both secure_sum runs with the
same run's plaintext row as a load reference (the machine is shared; compare ratios).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from secure_fgrpo.secure_sum.masked.context import Params, RoundContext
from secure_fgrpo.secure_sum.masked.graph import graph_seed
from secure_fgrpo.secure_sum.masked.keys import verify
from secure_fgrpo.secure_sum.masked.policy import SecurityPolicy
from secure_fgrpo.secure_sum.masked.simulate import make_spec

RESULTS = Path(__file__).resolve().parent / "results"


def _ms(fn: Callable[[], Any], reps: int) -> float:
    t = time.thread_time()
    for _ in range(reps):
        fn()
    return 1e3 * (time.thread_time() - t) / reps


def checks(n: int) -> dict[str, Any]:
    spec = make_spec(n, 2, math.ceil(0.66 * n))
    ctx = RoundContext.build(spec, Params(), None)
    k = ctx.graph_params.degree
    key = Ed25519PrivateKey.generate()
    pub = key.public_key()
    msg = os.urandom(200)
    sig = key.sign(msg)
    ads = [(p, os.urandom(32), os.urandom(32), sig) for p in spec.participants]
    words = os.urandom(4_000_000)
    verify_ms = _ms(lambda: verify(pub, sig, msg), 200)
    sign_ms = _ms(lambda: key.sign(msg), 200)
    return {
        "n": n, "degree": k, "share_threshold": ctx.graph_params.share_threshold,
        "client_policy_ms": _ms(lambda: SecurityPolicy().admit(spec, ctx.graph_params), 50),
        "client_graph_ms": _ms(lambda: ctx.build_graph(graph_seed(ctx.digest, ads)), 5),
        "client_verify_adverts_ms": n * verify_ms,
        "client_sign_sealed_ms": k * sign_ms,
        "client_verify_sealed_ms": k * verify_ms,
        "client_masked_sign_1M_ms": _ms(lambda: key.sign(ctx.masked_parts("c", words, ())[1]), 5),
        "server_verify_sealed_and_masked_ms": n * (k + 1) * verify_ms
        + n * _ms(lambda: ctx.masked_parts("c", words, ()), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10, 50, 100, 500])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    rows = [checks(n) for n in args.n]
    before, after = json.loads(args.before.read_text()), json.loads(args.after.read_text())
    lines = ["# Masked: cost of the new checks", "",
             f"Command: `benchmarks/masked_checks.py --n {' '.join(map(str, args.n))} --before {args.before} "
             f"--after {args.after}` "
             "(thread CPU time, niced, "
             "shared 2-core machine)", "",
             "## Each new check (ms; per client unless marked; 1M parameters where the vector matters)", "",
             "| n | k / t_k | policy | graph from all adverts | verify n adverts | sign k sealed | verify k sealed "
             "| hash + sign masked input (1M) | server: verify n·(k+1) signatures + hash n inputs (1M), per round |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']} | {r['degree']} / {r['share_threshold']} | {r['client_policy_ms']:.3f} | "
                     f"{r['client_graph_ms']:.2f} | {r['client_verify_adverts_ms']:.1f} | "
                     f"{r['client_sign_sealed_ms']:.1f} | "
                     f"{r['client_verify_sealed_ms']:.1f} | {r['client_masked_sign_1M_ms']:.1f} | "
                     f"{r['server_verify_sealed_and_masked_ms']:.0f} |")
    lines += ["", "## secure_sum.py rows, before and after (client / server CPU ms, same run's plaintext client in "
              "brackets as the load reference)", "",
              f"Before: `{before['meta']['command']}`, load {before['meta']['load_before']}. "
              f"After: `{after['meta']['command']}`, load {after['meta']['load_before']}.", "",
              "| n | dim | drop | k / t_k before | k / t_k after | client ms before [plain] | client ms after [plain] "
              "| server ms before | server ms after | up B/param before | after |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]

    def pick(rows_: list[dict], backend: str, n: int, dim: int, drop: int) -> dict | None:
        return next((r for r in rows_ if r["backend"] == backend and r["n"] == n and r["dim"] == dim
                     and r.get("dropped", 0) == drop), None)

    for r in after["rows"]:
        if r["backend"] != "masked":
            continue
        b = pick(before["rows"], "masked", r["n"], r["dim"], r["dropped"])
        pb = pick(before["rows"], "plaintext", r["n"], r["dim"], 0)
        pa = pick(after["rows"], "plaintext", r["n"], r["dim"], 0)
        if b is None or pb is None or pa is None:
            continue
        lines.append(f"| {r['n']} | {r['dim']} | {r['dropped']} | {b['degree']} / {b['share_threshold']} | "
                     f"{r['degree']} / {r['share_threshold']} | "
                     f"{b['client_ms_median']:.1f} [{pb['client_ms_median']:.1f}] | "
                     f"{r['client_ms_median']:.1f} [{pa['client_ms_median']:.1f}] | {b['server_ms']:.1f} | "
                     f"{r['server_ms']:.1f} | {b['upload_B_per_param']:.3f} | {r['upload_B_per_param']:.3f} |")
    lines.append("")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "masked_checks.json").write_text(json.dumps({"checks": rows, "before": args.before.name,
                                                             "after_meta": after["meta"]}, indent=1) + "\n")
    (args.out / "masked_checks.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
