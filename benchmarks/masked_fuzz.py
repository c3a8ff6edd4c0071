"""Protocol-level fuzz of the masked backend (issue 13): many rounds, one mutated message each.

    nice -n 10 .venv/bin/python benchmarks/masked_fuzz.py --trials 10000 --ring-trials 1000

Writes results/masked_fuzz.json and results/masked_fuzz.md: trials per stage, rounds that
aborted, rounds that completed with an exact sum, and every failure (an exception that escaped
the driver, or a completed round whose sum is wrong). The engine is
secure_fgrpo/secure_sum/masked/fuzz.py; tests/test_masked_fuzz.py runs a small slice of it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from secure_fgrpo.secure_sum.masked import fuzz
from secure_fgrpo.secure_sum.masked.simulate import make_spec

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=10_000, help="complete graph, n = 5")
    ap.add_argument("--ring-trials", type=int, default=1_000, help="sparse ring, n = 12, degree 4")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    configs = [("complete n=5, T=4, signed", make_spec(5, 8, 4, round_=1), {}, args.trials),
               ("ring n=12, T=8, degree 4 (t_k = 3), signed", make_spec(12, 8, 8, round_=1),
                {"degree": 4, "policy": {"gamma": 0.1, "delta": 0.2}}, args.ring_trials)]
    rows = []
    for label, spec, options, trials in configs:
        if trials <= 0:
            continue
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            rep = fuzz.run(Path(tmp), spec, options, trials, seed=args.seed)
        rows.append({"config": label, "seconds": round(time.perf_counter() - start, 1), **dataclasses.asdict(rep)})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "masked_fuzz.json").write_text(json.dumps({"command": "benchmarks/masked_fuzz.py "
                                                          f"--trials {args.trials} --ring-trials {args.ring_trials} "
                                                          f"--seed {args.seed}", "rows": rows}, indent=1) + "\n")
    lines = ["# Masked protocol fuzz", "", "| config | mutated rounds | aborted | exact sum | failures | s |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['config']} | {r['trials']} | {r['aborted']} | {r['completed_exact']} | {len(r['failures'])} "
              f"| {r['seconds']} |" for r in rows]
    lines += ["", "Mutated rounds per stage: " + "; ".join(
        f"{r['config']}: {r['by_stage']}" for r in rows), ""]
    (args.out / "masked_fuzz.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
