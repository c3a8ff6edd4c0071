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

from secure_fgrpo.data.partition import FederatedData
from secure_fgrpo.demo import demo_config
from secure_fgrpo.federation.datasets import build_data
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.grpo.evaluate import Scored, accuracy
from secure_fgrpo.report import global_rows
from secure_fgrpo.tasks.base import Problem

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"
log = logging.getLogger("real_demo")


def _value(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def answer_counts(train: list[Problem]) -> dict[str, Counter[str]]:
    """How often each calculator's training set has each score."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for p in train:
        counts[p.family][p.answer] += 1
    return counts


def modal_answers(counts: dict[str, Counter[str]]) -> dict[str, str]:
    """Each calculator's commonest training score: what a policy answers that learned the answer
    distribution and nothing about the patient."""
    return {fam: c.most_common(1)[0][0] for fam, c in counts.items()}


def prior_sampling(counts: dict[str, Counter[str]], held_out: list[Problem]) -> float:
    """Expected held-out accuracy of answering each calculator's training scores at their training
    frequencies, whatever the patient: the null for a *sampled* pass@1 (a policy that learned the
    answer distribution but not the patient scores this on average, above 0 and below modal)."""
    return sum(counts[p.family][p.answer] / max(1, sum(counts[p.family].values())) for p in held_out) / len(held_out)


def references(data: FederatedData) -> dict[str, float]:
    """The answer-prior references of a run, from its data alone."""
    counts = answer_counts([p for d in data.clients.values() for p in d.train])
    modal = modal_answers(counts)
    off = [p for p in data.global_eval if modal.get(p.family) != p.answer]
    return {"modal_guess_accuracy": sum(modal.get(p.family) == p.answer for p in data.global_eval)
            / len(data.global_eval), "prior_sampling_accuracy": prior_sampling(counts, data.global_eval),
            "off_modal_prior_sampling": prior_sampling(counts, off) if off else float("nan"),
            "global_eval_prompts": len(data.global_eval)}


def reading(scored: list[Scored], held_out: list[Problem], modal: dict[str, str]) -> dict[str, float]:
    """What an evaluation's answers say beyond accuracy: the accuracy on held-out patients whose
    score is not their calculator's commonest (the modal guess gets none of them; compare it with
    ``off_modal_prior_sampling``), the share of answers that are the commonest score (answering
    from the prior), and the share of completions that finished with an answer (the format)."""
    off = [s for s, p in zip(scored, held_out, strict=True) if modal.get(p.family) != p.answer]
    return {"off_modal_accuracy": accuracy(off) if off else float("nan"), "off_modal_prompts": len(off),
            "answers_modal": sum(s.answer is not None and s.answer == modal.get(s.family) for s in scored) / len(scored),
            "finished_with_answer": sum(s.answer is not None for s in scored) / len(scored)}


def run_seed(seed: int, overrides: dict, run_dir: Path) -> dict:
    cfg = demo_config("smollm2", seed=seed, **overrides)
    marks: list[tuple[int, float, float, float]] = []  # (round, seconds since start, 1-min load, CPU seconds)
    reads: list[dict[str, float]] = []
    t0, c0 = time.perf_counter(), time.process_time()  # CPU seconds, all threads: the load-free cost

    def on_event(kind: str, info: dict) -> None:
        if kind == "round":
            marks.append((info["round"], time.perf_counter() - t0, os.getloadavg()[0], time.process_time() - c0))
            reads.append(reading(fed.last_scored, fed.data.global_eval, modal))
            log.info("seed %d round %d: global held-out accuracy %.3f, %s", seed, info["round"],
                     info.get("global_accuracy", float("nan")), reads[-1])

    fed = Federation(cfg, run_dir, on_event)
    modal = modal_answers(answer_counts([p for d in fed.data.clients.values() for p in d.train]))
    loaded = time.perf_counter() - t0
    fed.run()
    rows = global_rows(run_dir)
    acc = [r["global_accuracy"] for r in rows]
    n = len(fed.data.global_eval)
    return {"seed": seed, "accuracy": acc, "rounds": [r["round"] for r in rows], "gain": acc[-1] - acc[0],
            # two independent binomial samples of n prompts: the standard error of their difference
            "gain_se": ((acc[0] * (1 - acc[0]) + acc[-1] * (1 - acc[-1])) / n) ** 0.5,
            "by_family": [r["by_family"] for r in rows], "reading": reads,  # both in round order
            "base_per_calculator": rows[0]["by_family"],
            "seconds": {"load": round(loaded, 1), "total": round(time.perf_counter() - t0, 1),
                        "cpu_total": round(time.process_time() - c0, 1),
                        "at_round": [{"round": r, "t": round(t, 1), "load1": round(ld, 2), "cpu": round(c, 1)}
                                     for r, t, ld, c in marks]},
            **references(fed.data)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--combine", nargs="+", metavar="JSON", help="write one table from earlier runs' JSON files "
                    "(seeds run as separate processes) instead of running")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.combine:
        parts = [json.loads(Path(f).read_text()) for f in args.combine]
        runs = [r for part in parts for r in part["runs"]]
        for part in parts:  # runs recorded before the prior-sampling reference: computed from their data
            for r in part["runs"]:
                if "off_modal_prior_sampling" not in r:
                    ref = references(build_data(demo_config("smollm2", seed=r["seed"], **part["overrides"])))
                    if ref["global_eval_prompts"] != r["global_eval_prompts"]:
                        raise SystemExit(f"seed {r['seed']}: rebuilt data has {ref['global_eval_prompts']} "
                                         f"held-out prompts, the run had {r['global_eval_prompts']}")
                    r.update(ref)
        meta = {**parts[0], "combined": [str(f) for f in args.combine],
                "load_before": [max(p["load_before"][0] for p in parts)],
                "load_after": [max(p["load_after"][0] for p in parts)]}
        meta.pop("runs")
    else:
        runs, meta = run(args)
    (out / "real_demo.json").write_text(json.dumps({"runs": runs, **meta}, indent=1))
    (out / "real_demo.md").write_text(markdown(runs, meta))


def run(args: argparse.Namespace) -> tuple[list[dict], dict]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    overrides: dict = {k: _value(v) for k, _, v in (s.partition("=") for s in args.set)}
    if args.rounds is not None:
        overrides["federation.rounds"] = args.rounds
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_seed(int(s), overrides, Path(tmp) / f"seed{s}") for s in args.seeds.split(",")]
    cfg = demo_config("smollm2", **overrides)
    return runs, {"overrides": overrides, "threads": args.threads, "rounds": cfg.federation.rounds,
                  "workers": cfg.federation.workers, "load_before": [round(x, 2) for x in load0],
                  "load_after": [round(x, 2) for x in os.getloadavg()],
                  "machine": f"{platform.machine()}, {os.cpu_count()} CPUs shared, {args.threads} torch threads"}


def _mean_sd(xs: list[float]) -> str:
    m = sum(xs) / len(xs)
    sd = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 if len(xs) > 1 else 0.0
    return f"{m * 100:.1f} ± {sd * 100:.1f}" if len(xs) > 1 else f"{m * 100:.1f}"


def markdown(runs: list[dict], meta: dict) -> str:
    n_rounds = max(len(r["accuracy"]) for r in runs)
    lines = ["# The real-model demo: held-out accuracy per round", "",
             (f"`secure-fgrpo demo --model smollm2` config with overrides {meta['overrides'] or 'none'}; "
             f"{len(runs)} seed(s); {meta['machine']}; 1-min load average {meta['load_before'][0]} before, "
             f"{meta['load_after'][0]} after (2 idle cores would be ~0)."), "",
             "| seed | " + " | ".join(f"round {r}" for r in range(n_rounds))
             + " | gain ± SE | prior-sampling accuracy | modal-guess accuracy | seconds | CPU seconds |",
             "|---|" + "---|" * (n_rounds + 5)]
    for r in runs:
        accs = " | ".join(f"{a:.1%}" for a in r["accuracy"])
        lines.append(f"| {r['seed']} | {accs} | {r['gain'] * 100:+.1f} ± {r['gain_se'] * 100:.1f} points "
                     f"(n = {r['global_eval_prompts']}) | {r['prior_sampling_accuracy']:.1%} "
                     f"| {r['modal_guess_accuracy']:.1%} "
                     f"| {r['seconds']['total']:.0f} | {r['seconds']['cpu_total']:.0f} |")
    if len(runs) > 1 and all(len(r["accuracy"]) == n_rounds for r in runs):
        means = " | ".join(_mean_sd([r["accuracy"][k] for r in runs]) for k in range(n_rounds))
        lines.append(f"| mean ± SD (%) | {means} | {_mean_sd([r['gain'] for r in runs])} points "
                     f"| {_mean_sd([r['prior_sampling_accuracy'] for r in runs])} "
                     f"| {_mean_sd([r['modal_guess_accuracy'] for r in runs])} | | |")
    lines += ["", "References: *prior-sampling* is the expected accuracy of answering each calculator's training "
              "scores at their training frequencies whatever the patient (the null for a sampled pass@1); "
              "*modal-guess* always answers each calculator's commonest training score. A policy above "
              "prior-sampling reads something of the patient; below it, the gain is not evidence that it does.", "",
              "What the answers say (round 0 → last round, per seed): the accuracy on held-out patients whose "
              "score is not their calculator's commonest (the modal guess gets none of them; prior-sampling the "
              "figure beside it), the share of answers that are the commonest score, and the share of "
              "completions that finished with an answer (format).", "",
              "| seed | off-modal accuracy | prior-sampling on them | prompts | answers the commonest score "
              "| finished with an answer |", "|---|---|---|---|---|---|"]
    for r in runs:
        a, b = r["reading"][0], r["reading"][-1]
        lines.append(f"| {r['seed']} | {a['off_modal_accuracy']:.1%} → {b['off_modal_accuracy']:.1%} "
                     f"| {r['off_modal_prior_sampling']:.1%} | {a['off_modal_prompts']} "
                     f"| {a['answers_modal']:.0%} → {b['answers_modal']:.0%} "
                     f"| {a['finished_with_answer']:.0%} → {b['finished_with_answer']:.0%} |")
    fams = sorted(runs[0]["base_per_calculator"])
    last = [r["by_family"][-1] for r in runs]
    lines += ["", "Per calculator, round 0 → last round (mean over seeds; held-out prompts per seed in brackets):", "",
              "| calculator | prompts | round 0 | last round |", "|---|---|---|---|"]
    for f in fams:
        base = [r["base_per_calculator"][f]["accuracy"] for r in runs]
        end = [x[f]["accuracy"] for x in last if f in x]
        lines.append(f"| {f} | {'/'.join(str(r['base_per_calculator'][f]['prompts']) for r in runs)} "
                     f"| {_mean_sd(base)}% | {_mean_sd(end)}% |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
