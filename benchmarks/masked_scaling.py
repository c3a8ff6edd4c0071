"""Logarithmic SecAgg+ (issue 17 item 1): the masked backend's cost as n grows, with the graph
from masked/params.py beside the previous linear-degree rule (k = 2(n − T), forced with the
``degree`` option and a policy that admits it).

    nice -n 10 .venv/bin/python benchmarks/masked_scaling.py --n 10 50 100 200 500 --dim 100000

Writes results/masked_scaling.json and .md. Per row: degree, share threshold, client CPU ms per
1M parameters (median client, thread CPU time, measured at ``--dim`` and scaled), upload bytes
per parameter measured at ``--dim`` and at 1M parameters (the non-vector bytes are counted, not
estimated: every payload but the masked vector has a size independent of dim), and whether a
round with ⌊δ·n⌋ dropouts before the masked input completed. The fitted slope of client CPU per
1M against log2(n) and against n says how the cost grows.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("secure_sum_bench", Path(__file__).with_name("secure_sum.py"))
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[10, 50, 100, 200, 500])
    ap.add_argument("--linear-n", type=int, nargs="*", default=[50, 100, 200])
    ap.add_argument("--dim", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("secure_fgrpo").setLevel(logging.ERROR)
    bench = _bench()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.n:
            t = math.ceil(0.66 * n)
            d = math.floor(0.1 * n + 1e-9)
            for label, opts in [("logarithmic", {})] + (
                    [("linear", {"degree": min(n - 1, 2 * (n - t)), "policy": {"gamma": 0.0, "delta": 0.0}})]
                    if n in args.linear_n else []):
                row = bench.measure_ours("masked", n, args.dim, t, 0, 1, Path(tmp) / f"{label}-{n}", opts)
                survived = bench.measure_ours("masked", n, 2_000, t, d, 1, Path(tmp) / f"{label}-{n}-d", opts) \
                    if d and label == "logarithmic" else None
                up_overhead = row["upload_B_per_param"] * args.dim - 4 * args.dim
                rows.append({"graph": label, "n": n, "threshold": t, "degree": row["degree"],
                             "share_threshold": row["share_threshold"], "client_cpu_ms_per_1M": row["client_ms_per_1M"],
                             "server_cpu_ms_per_1M": row["server_ms_per_1M"],
                             "upload_B_per_param_at_dim": row["upload_B_per_param"],
                             "upload_B_per_param_at_1M": 4 + up_overhead / 1e6,
                             "download_B_per_param_at_1M": row["download_B_per_param"] * args.dim / 1e6,
                             "dropouts_survived": d if survived is not None else None,
                             "loadavg_1m": row["loadavg_1m"]})
                logging.info("%s", rows[-1])
    log_rows = [r for r in rows if r["graph"] == "logarithmic"]
    x = np.array([r["n"] for r in log_rows], dtype=float)
    y = np.array([r["client_cpu_ms_per_1M"] for r in log_rows])
    slope_log = float(np.polyfit(np.log2(x), y, 1)[0]) if len(x) > 1 else float("nan")
    slope_lin = float(np.polyfit(x, y, 1)[0]) if len(x) > 1 else float("nan")
    args.out.mkdir(parents=True, exist_ok=True)
    cmd = f"benchmarks/masked_scaling.py --n {' '.join(map(str, args.n))} --linear-n " \
          f"{' '.join(map(str, args.linear_n))} --dim {args.dim}"
    (args.out / "masked_scaling.json").write_text(json.dumps(
        {"command": cmd, "rows": rows, "slope_ms_per_log2n": slope_log, "slope_ms_per_client": slope_lin},
        indent=1) + "\n")
    lines = ["# Masked: logarithmic graph vs linear degree", "", f"Command: `{cmd}` (niced, shared 2-core machine)", "",
             "| graph | n | T | k | t_k | client CPU ms per 1M | server CPU ms per 1M | up B/param at dim | "
             "up B/param at 1M | down B/param at 1M | δ·n dropouts survived |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['graph']} | {r['n']} | {r['threshold']} | {r['degree']} | {r['share_threshold']} | "
                     f"{r['client_cpu_ms_per_1M']:.0f} | {r['server_cpu_ms_per_1M']:.0f} | "
                     f"{r['upload_B_per_param_at_dim']:.3f} | {r['upload_B_per_param_at_1M']:.3f} | "
                     f"{r['download_B_per_param_at_1M']:.3f} | {r['dropouts_survived']} |")
    lines += ["", f"Fitted slope of the logarithmic rows' client CPU per 1M: {slope_log:.1f} ms per doubling of n "
              f"({slope_lin:.3f} ms per added client).", ""]
    (args.out / "masked_scaling.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
