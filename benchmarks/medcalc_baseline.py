"""Zero-shot accuracy of SmolLM2-135M-Instruct on the clinical-calculation vignettes, per
calculator: which calculators sometimes succeed (GRPO needs reward variance) and how often the
model uses the boxed format. Same scoring as training and evaluation: sampled pass@1 at the given
temperature by MedCalc-Bench's rule (tasks/medcalc.py), the mean partial-credit correctness
(``reward.partial``: the reward's gradient where accuracy is 0), and the share of completions that
finished and boxed. ``--level easy`` measures the first difficulty level (``mc_*_easy``),
``--level criteria`` / ``--level points`` the rule-based scores with their criteria listed
(``mc_*_criteria``) or their points given (``mc_*_points``; tasks/medcalc_points.py).

    .venv/bin/python benchmarks/medcalc_baseline.py [--level easy|full|criteria|points] [--per-calc 8] [--samples 2] \
        [--tokens 96] [--temperature 1.0] [--threads 2]

writes benchmarks/results/medcalc_baseline.{json,md} (--out DIR elsewhere). Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import torch

from secure_fgrpo.model.load import load_base
from secure_fgrpo.rollout import SamplingSpec, make_rollout
from secure_fgrpo.tasks import sample_problems
from secure_fgrpo.tasks.medcalc import CALCULATOR_FAMILIES
from secure_fgrpo.tasks.medcalc_points import LEVELS, POINTS_FAMILIES

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
MODEL = "smollm2-135m-instruct"
log = logging.getLogger("medcalc_baseline")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-calc", type=int, default=8, help="vignettes per calculator")
    ap.add_argument("--samples", type=int, default=2, help="completions per vignette")
    ap.add_argument("--tokens", type=int, default=96, help="max new tokens")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--level", choices=("easy", "full", "criteria", "points"), default="full")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    model, tok = load_base(MODEL)
    rollout = make_rollout("transformers")
    sampling = SamplingSpec(max_new_tokens=args.tokens, temperature=args.temperature)
    rows, t0 = [], time.perf_counter()
    families = ([f for f in POINTS_FAMILIES if f.level == args.level] if args.level in LEVELS
                else [f for f in CALCULATOR_FAMILIES if f.easy == (args.level == "easy")])
    for i, fam in enumerate(families):
        problems = sample_problems({fam.name: 1.0}, args.per_calc, seed=args.seed * 1000 + i, space="held_out")
        batch = rollout.generate(model, tok, [p.prompt for p in problems], args.samples, sampling, seed=args.seed + i)
        correct = partial = finished = boxed = 0.0
        for j, (text, done) in enumerate(zip(batch.texts, batch.finished, strict=True)):
            p = problems[j // args.samples]
            finished += done
            boxed += done and fam.well_formed(text)
            correct += fam.correctness(p, fam.extract(text), partial=False) if done else 0.0
            partial += fam.correctness(p, fam.extract(text), partial=True) if done else 0.0
        n = len(batch.texts)
        rows.append({"calculator": fam.name, "specialty": fam.calc.specialty, "kind": fam.calc.kind, "n": n,
                     "accuracy": correct / n, "partial": partial / n, "finished": finished / n, "boxed": boxed / n,
                     "example": batch.texts[0][:200]})
        log.info("%s: %s/%d correct, %d finished, %d boxed", fam.name, correct, n, finished, boxed)
    seconds = time.perf_counter() - t0
    meta = {"model": MODEL, "level": args.level, "temperature": args.temperature, "per_calc": args.per_calc, "samples": args.samples, "tokens": args.tokens,
            "threads": args.threads, "seed": args.seed, "seconds": round(seconds, 1),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads (shared CPU)"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "medcalc_baseline" + ("" if args.level == "full" else f"_{args.level}")
    (out / f"{stem}.json").write_text(json.dumps({"rows": rows, **meta}, indent=1))
    lines = [f"# Zero-shot {MODEL} on clinical-calculation vignettes ({args.level} level)",
             "", (f"sampled pass@1 at T = {args.temperature:g} on held-out prompts, {args.per_calc} vignettes x "
                  f"{args.samples} completions per calculator, at most {args.tokens} new tokens, seed {args.seed}; "
                  f"{seconds:.0f} s on {meta['machine']}."), "",
             "| calculator | specialty | kind | accuracy | partial credit | finished | boxed |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['calculator']} | {r['specialty']} | {r['kind']} | {r['accuracy']:.0%} | {r['partial']:.2f} "
              f"| {r['finished']:.0%} | {r['boxed']:.0%} |" for r in rows]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
