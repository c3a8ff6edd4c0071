"""The real-model demo (``secure-fgrpo demo --model smollm2``: SmolLM2-135M-Instruct, four
hospitals by specialty, masked secure sum) measured: the base model's held-out accuracy per
calculator, then the global adapter's held-out accuracy after every round, per seed, with the
wall time of each round and the machine's load while it ran (this CPU is shared: the load says
how far a number is from an idle machine's).

    .venv/bin/python benchmarks/real_demo.py [--seeds 0] [--rounds N] [--threads 2] \\
        [--set grpo.steps=1 --set data.global_eval_size=14 ...] [--out DIR]

writes real_demo.{json,md} under --out (default benchmarks/results). ``--set`` takes dotted config
overrides (values parsed as JSON, else strings) to measure a smaller federation and extrapolate.
Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import torch

from secure_fgrpo.demo import accuracy_by_family, demo_config
from secure_fgrpo.federation.runner import Federation, eval_seed
from secure_fgrpo.report import accuracy_curves
from secure_fgrpo.rollout import make_rollout
from secure_fgrpo.tasks.base import Problem

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
log = logging.getLogger("real_demo")


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def modal_guess(train: list[Problem], held_out: list[Problem]) -> float:
    """Held-out accuracy of always answering each calculator's commonest training answer: what a
    policy reaches that learned the answer distribution and nothing about the patient."""
    by_family: dict[str, Counter[str]] = defaultdict(Counter)
    for p in train:
        by_family[p.family][p.answer] += 1
    hits = sum(bool(by_family[p.family]) and by_family[p.family].most_common(1)[0][0] == p.answer for p in held_out)
    return hits / len(held_out)


def run_seed(seed: int, overrides: dict, run_dir: Path) -> dict:
    cfg = demo_config("smollm2", seed=seed, **overrides)
    marks: list[tuple[int, float, float, float]] = []  # (round, seconds since start, 1-min load, CPU seconds)
    t0, c0 = time.perf_counter(), time.process_time()  # CPU seconds, all threads: the load-free cost

    def on_event(kind: str, info: dict) -> None:
        if kind == "round":
            marks.append((info["round"], time.perf_counter() - t0, os.getloadavg()[0], time.process_time() - c0))
            log.info("seed %d round %d: global held-out accuracy %.3f", seed, info["round"],
                     info.get("global_accuracy", float("nan")))

    fed = Federation(cfg, run_dir, on_event)
    loaded = time.perf_counter() - t0
    base = accuracy_by_family(fed.model, fed.tok, make_rollout(cfg.model.rollout), fed.data.global_eval,
                              fed.eval_sampling, eval_seed(cfg.seed))
    base_s = time.perf_counter() - t0 - loaded
    log.info("seed %d base per calculator: %s", seed, {k: round(a, 2) for k, (a, _) in base.items()})
    fed.run()
    glob, _ = accuracy_curves(run_dir)
    rounds = sorted(glob)
    return {"seed": seed, "accuracy": [glob[r] for r in rounds], "rounds": rounds,
            "gain": glob[rounds[-1]] - glob[rounds[0]],
            "base_per_calculator": {k: {"accuracy": a, "prompts": n} for k, (a, n) in base.items()},
            "seconds": {"load": round(loaded, 1), "base_per_calculator": round(base_s, 1),
                        "total": round(time.perf_counter() - t0, 1), "cpu_total": round(time.process_time() - c0, 1),
                        "at_round": [{"round": r, "t": round(t, 1), "load1": round(ld, 2), "cpu": round(c, 1)}
                                     for r, t, ld, c in marks]},
            "global_eval_prompts": len(fed.data.global_eval),
            "modal_guess_accuracy": modal_guess([p for d in fed.data.clients.values() for p in d.train],
                                                fed.data.global_eval)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    overrides: dict = {k: _value(v) for k, _, v in (s.partition("=") for s in args.set)}
    if args.rounds is not None:
        overrides["federation.rounds"] = args.rounds
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_seed(int(s), overrides, Path(tmp) / f"seed{s}") for s in args.seeds.split(",")]
    cfg = demo_config("smollm2", **overrides)
    meta = {"overrides": overrides, "threads": args.threads, "rounds": cfg.federation.rounds,
            "workers": cfg.federation.workers, "load_before": [round(x, 2) for x in load0],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs shared, {args.threads} torch threads"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "real_demo.json").write_text(json.dumps({"runs": runs, **meta}, indent=1))
    (out / "real_demo.md").write_text(markdown(runs, meta))


def markdown(runs: list[dict], meta: dict) -> str:
    n_rounds = max(len(r["accuracy"]) for r in runs)
    lines = ["# The real-model demo: held-out accuracy per round", "",
             (f"`secure-fgrpo demo --model smollm2` config with overrides {meta['overrides'] or 'none'}; "
             f"{len(runs)} seed(s); {meta['machine']}; 1-min load average {meta['load_before'][0]} before, "
             f"{meta['load_after'][0]} after (2 idle cores would be ~0)."), "",
             "| seed | " + " | ".join(f"round {r}" for r in range(n_rounds))
             + " | gain | binomial SE of one round | modal-guess accuracy | seconds | CPU seconds |",
             "|---|" + "---|" * (n_rounds + 5)]
    for r in runs:
        accs = " | ".join(f"{a:.1%}" for a in r["accuracy"])
        n, p = r["global_eval_prompts"], r["accuracy"][0]
        se = (p * (1 - p) / n) ** 0.5
        lines.append(f"| {r['seed']} | {accs} | {r['gain'] * 100:+.1f} points | {se * 100:.1f} points (n = {n}) "
                     f"| {r['modal_guess_accuracy']:.1%} | {r['seconds']['total']:.0f} | {r['seconds'].get('cpu_total', 0):.0f} |")
    lines += ["", "Base model (round 0) per calculator, seed " + str(runs[0]["seed"]) + ":", "",
              "| calculator | prompts | accuracy |", "|---|---|---|"]
    lines += [f"| {k} | {v['prompts']} | {v['accuracy']:.0%} |" for k, v in runs[0]["base_per_calculator"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
