"""A small probe of PubSwap's settings on the demo federation: global held-out accuracy after each
round with ``[pubswap]`` off and on (several settings), one seed. Not the convergence benchmark
(benchmarks/convergence.py compares methods over seeds at equal rollouts); this only picks the
defaults. Writes ``results/pubswap_probe.json`` and ``.md``.

    .venv/bin/python benchmarks/pubswap_probe.py --rounds 3 --variants off,p16-s2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from secure_fgrpo.demo import demo_config
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.federation.store import read_jsonl

VARIANTS: dict[str, dict] = {
    "off": {},
    "p8-s1": {"pubswap.enabled": True, "pubswap.prompts": 8, "pubswap.steps": 1},
    "p8-s2": {"pubswap.enabled": True, "pubswap.prompts": 8, "pubswap.steps": 2},
    "p16-s1": {"pubswap.enabled": True, "pubswap.prompts": 16, "pubswap.steps": 1},
    "p16-s2": {"pubswap.enabled": True, "pubswap.prompts": 16, "pubswap.steps": 2},
    "p32-s1": {"pubswap.enabled": True, "pubswap.prompts": 32, "pubswap.steps": 1},
}


def probe(name: str, rounds: int, seed: int) -> dict:
    cfg = demo_config(**{"seed": seed, "federation.rounds": rounds, **VARIANTS[name]})
    with tempfile.TemporaryDirectory(prefix=f"pubswap-probe-{name}-") as tmp:
        t0 = time.perf_counter()
        summary = Federation(cfg, Path(tmp)).run()
        replaced = {c.name: sum(r.get("pubswap_replaced", 0) for r in read_jsonl(Path(tmp) / "clients" / c.name
                                                                                   / "metrics.jsonl"))
                    for c in cfg.clients}
        return {"variant": name, "settings": VARIANTS[name], "seed": seed,
                "accuracy": [r["global_accuracy"] for r in summary.rounds], "replaced": replaced,
                "seconds": round(time.perf_counter() - t0, 1), "loadavg": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    rows = [probe(v, args.rounds, args.seed) for v in args.variants.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pubswap_probe.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["    " + " ".join([".venv/bin/python", "benchmarks/pubswap_probe.py", *sys.argv[1:]]), "",
             f"Demo federation, seed {args.seed}, {args.rounds} rounds; global held-out accuracy (200 prompts) "
             "after each round; one seed: read about ±3.5 points.", "",
             "| variant | settings | accuracy by round | pool responses used (sum over clients) | seconds |",
             "|---|---|---|---|---|"]
    for r in rows:
        acc = " → ".join(f"{a:.1%}" for a in r["accuracy"])
        lines.append(f"| {r['variant']} | {r['settings'] or 'pubswap off'} | {acc} | "
                     f"{int(sum(r['replaced'].values()))} | {r['seconds']} |")
    (args.out / "pubswap_probe.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
