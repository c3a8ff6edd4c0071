"""Membership canaries planted at one client of a real federation: AUC and one-shot ε from the
server's best estimate of that client's update, per backend.

Client b's training pool is P secret-choice canaries (audit/canary.py make_choice_canaries) in
several copies; the other 64 - P canaries are never seen (the null). One federated round of
GRPO runs through the real secure sum; the server then estimates b's update from b's own
archived message (audit/estimates.py: the vector in plaintext, masked words or ciphertext
coefficients otherwise) and scores every canary by how much global + that estimate raises the
secret letter (audit/canary.py choice_membership). Plaintext should separate planted from
held-out canaries; masked and CKKS should sit at chance.

    .venv/bin/python benchmarks/audit_canary.py [--seeds 0 1 2] [--backends plaintext masked ckks]

Writes benchmarks/results/audit_canary.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from secure_fgrpo.audit.canary import (
    choice_membership,
    make_choice_canaries,
    split_canaries,
    update_from_estimate,
    write_client_data,
)
from secure_fgrpo.audit.estimates import estimate_inputs
from secure_fgrpo.audit.view import load_view
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.tasks import FAMILIES

RESULTS = Path(__file__).parent / "results"
log = logging.getLogger("audit_canary")


def run_config(data: tuple[Path, Path], backend: str, seed: int, steps: int, lr: float) -> dict:
    """Three clients, one round; b trains only on its canaries (its filler is its eval split)."""
    return {
        "seed": seed, "model": {"lora": {"r": 4}},
        "federation": {"rounds": 1, "workers": 1},
        "secure_sum": {"backend": backend},
        "grpo": {"steps": steps, "group_size": 8, "prompts_per_step": 8, "oversample": 8, "lr": lr,
                 "sampling": {"max_new_tokens": 4}, "loss": {"max_completion_length": 4}},
        "eval": {"max_new_tokens": 4},
        "data": {"train_size": 40, "eval_size": 8, "global_eval_size": 16},
        "clients": [
            {"name": "a", "families": {"vitals": 1.0}},
            {"name": "b", "data": str(data[0]), "eval_data": str(data[1])},
            {"name": "c", "families": {"choice": 1.0}},
        ],
    }


def one(backend: str, seed: int, planted_n: int, copies: int, steps: int, lr: float) -> dict:
    canaries = make_choice_canaries(64, seed=1000 + seed)
    planted, held = split_canaries(canaries, planted_n, seed=2000 + seed)
    rng = random.Random(seed)  # public filler problems
    filler = [FAMILIES["choice"].sample(rng) for _ in range(planted_n * copies // 4)]
    with tempfile.TemporaryDirectory(prefix="audit-canary-") as tmp:
        data = write_client_data(Path(tmp) / "b.jsonl", planted * copies, filler)
        cfg = config_from_dict(run_config(data, backend, seed, steps, lr))
        t0 = time.perf_counter()
        fed = Federation(cfg, Path(tmp) / "run")
        base = fed.global_model.state.vector.astype(np.float64).copy()
        fed.run()
        seconds = time.perf_counter() - t0
        assert {p.prompt for p in fed.data.clients["b"].train} == {p.prompt for p in planted}
        est = {m.sender: m for m in estimate_inputs(load_view(Path(tmp) / "run"))}["b"]
        update = update_from_estimate(est.vector, cfg.federation.delta_clip)
        res = choice_membership(fed.model, fed.tok, fed.layout, base, update, planted, held)
    return {"backend": backend, "seed": seed, "auc": res.auc, "epsilon": res.epsilon,
            "epsilon_lower": res.epsilon_lower, "mean_planted": res.mean_observed,
            "mean_held_out": res.mean_unobserved, "run_seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--backends", nargs="+", default=["plaintext", "masked", "ckks"])
    ap.add_argument("--planted", type=int, default=8)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    rows = []
    for seed in args.seeds:
        for backend in args.backends:
            rows.append(one(backend, seed, args.planted, args.copies, args.steps, args.lr))
            log.warning("%s", rows[-1])
    summary = {b: {"auc_mean": statistics.mean(r["auc"] for r in rows if r["backend"] == b),
                   "auc_min": min(r["auc"] for r in rows if r["backend"] == b),
                   "auc_max": max(r["auc"] for r in rows if r["backend"] == b)} for b in args.backends}
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "audit_canary.json").write_text(json.dumps({"settings": settings, "rows": rows, "summary": summary},
                                                      indent=1, default=str))
    lines = ["# Membership canaries planted at one client, scored from the server's view", "",
             f"Settings: {settings}; {64 - args.planted} held-out canaries; embedded default model, LoRA r=4, "
             "one round. Chance is AUC 0.5.", "",
             "| backend | seed | AUC | ε (one-shot) | ε 95% lower | planted mean | held-out mean | run s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['seed']} | {r['auc']:.3f} | {r['epsilon']:.3g} | "
                     f"{r['epsilon_lower']:.3g} | {r['mean_planted']:.3g} | {r['mean_held_out']:.3g} | "
                     f"{r['run_seconds']:.1f} |")
    lines += ["", "| backend | mean AUC | min | max |", "|---|---|---|---|"]
    lines += [f"| {b} | {s['auc_mean']:.3f} | {s['auc_min']:.3f} | {s['auc_max']:.3f} |" for b, s in summary.items()]
    (out / "audit_canary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
