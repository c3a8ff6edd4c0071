"""One local GRPO step of ours against TRL's ``GRPOTrainer``, same tiny model, same batch, on CPU.

Batch: 16 prompts x 8 completions, at most 8 new tokens, T = 1, LoRA r = 16 (alpha 32, the same
seven projections), DAPO loss (eps 0.2/0.28), no KL, one policy-gradient iteration per batch,
AdamW, fp32, one 0/1 correctness reward. A step = generate + score + advantages + forward/backward
+ optimizer step. Each variant lives in its own subprocess (``--trl-python`` picks the
interpreter of the TRL variants, for a separate venv) and waits at a gate before every step;
the parent opens one gate at a time, round-robin in a rotating order, so the variants' steps
interleave and never overlap: a load spike on the shared machine hits them alike. The first
``--warmup`` steps are skipped and the median of the next ``--steps`` is reported.

    .venv/bin/python benchmarks/trl_step.py [--steps 10] [--warmup 2] [--threads 1] [--trl-python PY]

writes benchmarks/results/trl_step.{json,md} (--quick: 3 steps, to a temp folder). Not part of CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
log = logging.getLogger("trl_step")

PROMPTS, GROUP, MAX_NEW, LORA_R, LORA_ALPHA, LR = 16, 8, 8, 16, 32, 2e-3
VARIANTS = {  # name -> (runner, description)
    "ours": ("ours", "secure_fgrpo train_round, standard LoRA (A and B trained), no group filtering"),
    "ours-ffa": ("ours", "secure_fgrpo train_round, FFA-LoRA (A frozen: the project default)"),
    "trl": ("trl", "TRL GRPOTrainer, fp32, no gradient checkpointing (like for like)"),
    "trl-defaults": ("trl", "TRL GRPOTrainer with its defaults bf16=True, gradient_checkpointing=True"),
}


class Gate:
    """The child's side of the step protocol: block on stdin before a step, report after it."""

    def wait(self) -> None:
        print("@@WAIT", flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit("trl_step child: parent closed the gate")

    def report(self, seconds: float) -> None:
        print(f"@@STEP {seconds!r}", flush=True)


def _problems(n: int, seed: int) -> list:
    from secure_fgrpo.tasks import GENERATED_FAMILIES, sample_problems

    return sample_problems(list(GENERATED_FAMILIES), n, seed=seed)


def _score(problem: Any, completion: str, finished: bool) -> float:
    from secure_fgrpo.tasks import RewardSpec, score

    return score(problem, completion, finished, RewardSpec())  # 0/1 correctness


def run_ours(variant: str, steps: int, seed: int, gate: Gate) -> None:
    import torch

    from secure_fgrpo.grpo.loss import LossConfig
    from secure_fgrpo.grpo.trainer import GRPOConfig, train_round
    from secure_fgrpo.model.load import load_base
    from secure_fgrpo.model.lora import LoraSpec, attach_lora
    from secure_fgrpo.rollout import SamplingSpec, make_rollout

    torch.manual_seed(seed)
    base, tok = load_base("embedded")
    mode = "ffa" if variant == "ours-ffa" else "standard"
    model = attach_lora(base, LoraSpec(r=LORA_R, alpha=LORA_ALPHA, mode=mode))
    cfg = GRPOConfig(steps=1, group_size=GROUP, prompts_per_step=PROMPTS, oversample=PROMPTS,
                     filter_informative=False, lr=LR, mu=1, max_grad_norm=1.0, scale_rewards="group",
                     sampling=SamplingSpec(MAX_NEW, 1.0), loss=LossConfig(loss_type="dapo", epsilon_low=0.2,
                                                                          epsilon_high=0.28, beta=0.0,
                                                     max_completion_length=MAX_NEW))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    pool, rollout = _problems(PROMPTS * steps * 4, seed), make_rollout("transformers")
    for i in range(steps):
        gate.wait()
        t0 = time.perf_counter()
        train_round(model, tok, rollout, pool, _score, cfg, seed=seed * 1000 + i, make_optimizer=lambda _p: opt)
        gate.report(time.perf_counter() - t0)


def run_trl(variant: str, steps: int, seed: int, gate: Gate) -> None:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from secure_fgrpo.model.load import load_base
    from secure_fgrpo.model.lora import DEFAULT_TARGETS
    from secure_fgrpo.tasks.base import Problem

    torch.manual_seed(seed)
    model, tok = load_base("embedded")
    problems = _problems(PROMPTS * steps * 4, seed)
    data = Dataset.from_list([{"prompt": p.prompt, "answer": p.answer, "family": p.family} for p in problems])
    eos = tok.eos_token_id

    def correctness(prompts: list[str], completions: list[str], completion_ids: list[list[int]],
                    answer: list[str], family: list[str], **_kw: Any) -> list[float]:
        return [_score(Problem(p, a, f), c, eos in ids)
                for p, c, ids, a, f in zip(prompts, completions, completion_ids, answer, family, strict=True)]

    class StepTimer(TrainerCallback):  # the Trainer calls these around generation + update
        def on_step_begin(self, args, state, control, **kw):
            gate.wait()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            gate.report(time.perf_counter() - self.t0)

    like_for_like = variant == "trl"
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, per_device_train_batch_size=PROMPTS * GROUP, gradient_accumulation_steps=1,
            num_generations=GROUP, max_completion_length=MAX_NEW, temperature=1.0, top_k=0, top_p=1.0,
            use_vllm=False, report_to=[], learning_rate=LR, lr_scheduler_type="constant", weight_decay=0.0,
            max_grad_norm=1.0, beta=0.0, loss_type="dapo", epsilon=0.2, epsilon_high=0.28,
            scale_rewards="group", num_iterations=1, max_steps=steps, logging_steps=10**6,
            save_strategy="no", use_cpu=True, disable_tqdm=True, seed=seed, dataloader_num_workers=0,
            log_completions=False,
            **({"bf16": False, "gradient_checkpointing": False} if like_for_like else {}),
        )
        lora = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=list(DEFAULT_TARGETS),
                          lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
        trainer = GRPOTrainer(model=model, reward_funcs=correctness, args=args, train_dataset=data,
                              processing_class=tok, peft_config=lora, callbacks=[StepTimer()])
        trainer.train()


def _child(variant: str, steps: int, threads: int, seed: int) -> None:
    import torch

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    runner = run_ours if VARIANTS[variant][0] == "ours" else run_trl
    runner(variant, steps, seed, Gate())
    versions = {}
    for mod in ("torch", "transformers", "peft", "trl"):
        with contextlib.suppress(ImportError):
            versions[mod] = __import__(mod).__version__
    print("@@DONE " + json.dumps({"versions": versions, "python": sys.executable}), flush=True)


class Child:
    """The parent's side: one variant's process, driven one step at a time."""

    def __init__(self, variant: str, python: str, args: argparse.Namespace, log_dir: Path) -> None:
        self.variant, self.times, self.loads, self.done = variant, [], [], {}
        self.err = open(log_dir / f"{variant}.stderr", "w+")  # noqa: SIM115 (closed in stop())
        cmd = [python, __file__, "--child", variant, "--steps", str(args.warmup + args.steps),
               "--threads", str(args.threads), "--seed", str(args.seed)]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True, bufsize=1)

    def _expect(self, *tags: str) -> str:
        """Next protocol line with one of ``tags`` (other output is ignored)."""
        for line in self.proc.stdout:
            tag, _, rest = line.strip().partition(" ")
            if tag in tags:
                if tag == "@@DONE":
                    self.done = json.loads(rest)
                return f"{tag} {rest}"
        self.err.seek(0)
        raise RuntimeError(f"variant {self.variant} exited ({self.proc.wait()}):\n{self.err.read()[-4000:]}")

    def ready(self) -> None:
        self._expect("@@WAIT")

    def step(self) -> None:
        """Open the gate once, wait for the step's time, then until the child is idle again."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.times.append(float(self._expect("@@STEP").split()[1]))
        self.loads.append(os.getloadavg()[0])
        self._expect("@@WAIT", "@@DONE")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()
        self.err.close()


def _interleaved(variants: list[str], args: argparse.Namespace) -> dict[str, Child]:
    with tempfile.TemporaryDirectory() as tmp:
        children = {v: Child(v, args.trl_python if VARIANTS[v][0] == "trl" else sys.executable, args, Path(tmp))
                    for v in variants}
        try:
            for c in children.values():  # every model loaded before the first timed step
                c.ready()
            for i in range(args.warmup + args.steps):
                for v in variants[i % len(variants):] + variants[: i % len(variants)]:
                    children[v].step()
                log.info("step %d: %s", i + 1, "  ".join(f"{v} {children[v].times[-1]:.2f}s" for v in variants))
        finally:
            for c in children.values():  # EOF at its gate ends a child that is not done yet
                c.close()
    return children


def _summary(child: Child, warmup: int) -> dict[str, Any]:
    steady = child.times[warmup:]
    return {"variant": child.variant, "description": VARIANTS[child.variant][1],
            "step_s_median": statistics.median(steady), "step_s_min": min(steady), "step_s_max": max(steady),
            "steady_steps": len(steady), "all_step_s": child.times, "loadavg_1min_after_step": child.loads,
            "versions": child.done.get("versions", {}), "python": child.done.get("python")}


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    rows = {r["variant"]: r for r in result["variants"]}
    base = rows["ours"]["step_s_median"]
    lines = ["# One local GRPO step: secure_fgrpo vs TRL GRPOTrainer (CPU)", "",
             "    " + result["command"], "",
             f"Embedded tiny model, {PROMPTS} prompts x {GROUP} completions, <= {MAX_NEW} new tokens, LoRA r={LORA_R}, "
             f"DAPO loss, fp32 unless noted, {result['settings']['threads']} torch thread(s); median of "
             f"{result['settings']['steps']} steps after {result['settings']['warmup']} warm-up steps, the variants' "
             "steps interleaved one at a time (rotating order).", "",
             "| variant | median s/step | min–max | ratio of medians vs ours | median paired ratio vs ours |",
             "|---|---|---|---|---|"]
    for r in result["variants"]:
        lines.append(f"| {r['variant']}: {r['description']} | {r['step_s_median']:.3f} | "
                     f"{r['step_s_min']:.3f}–{r['step_s_max']:.3f} | {r['step_s_median'] / base:.2f}x | "
                     f"{r['paired_ratio_median']:.2f}x |")
    if "trl" in rows:
        lines += ["", f"**TRL / ours = {result['ratio_trl_over_ours']:.2f}** (like for like, ratio of medians; "
                  f"median of per-step paired ratios {rows['trl']['paired_ratio_median']:.2f})."]
    v = result["variants"][-1]["versions"]
    lines += ["", f"Versions: {', '.join(f'{k} {x}' for k, x in v.items())}. Machine: {result['machine']['platform']}, "
              f"{result['machine']['cpu_count']} CPUs shared with other jobs (load average "
              f"{result['machine']['loadavg_start'][0]:.2f} at start, "
              f"{result['machine']['loadavg_end'][0]:.2f} at end). "
              "Each variant in its own process. Raw step times: trl_step.json.", ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per variant (default 10; 3 with --quick)")
    ap.add_argument("--warmup", type=int, default=2, help="steps skipped before timing")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trl-python", default=sys.executable, help="interpreter with trl==1.16.0 and secure_fgrpo")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {list(VARIANTS)}")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default benchmarks/results)")
    ap.add_argument("--quick", action="store_true", help="3 timed steps, 1 warm-up, output to a temp folder")
    ap.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child, args.steps, args.threads, args.seed)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.quick:
        args.warmup = 1
    args.steps = args.steps or (3 if args.quick else 10)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        ap.error("--steps and --threads must be >= 1, --warmup >= 0")
    variants = args.variants.split(",")
    if "ours" not in variants or any(v not in VARIANTS for v in variants):
        ap.error(f"--variants must include 'ours' and name only {list(VARIANTS)}")
    out = args.out or (Path(tempfile.gettempdir()) / "secure_fgrpo_trl_step_quick" if args.quick else RESULTS)
    from secure_fgrpo.model.load import resolve_model_path

    resolve_model_path("embedded")  # build/cache the model once, outside the timed children
    command = shlex.join([os.path.relpath(sys.executable, REPO), os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    load0 = list(os.getloadavg())
    children = _interleaved(variants, args)
    rows = [_summary(children[v], args.warmup) for v in variants]
    ours = children["ours"].times[args.warmup:]
    for r in rows:  # steps with the same index ran back to back: their ratio cancels slow load drift
        r["paired_ratio_median"] = statistics.median(t / o for t, o in zip(r["all_step_s"][args.warmup:], ours,
                                                                           strict=True))
    by = {r["variant"]: r for r in rows}
    result = {
        "command": command,
        "settings": {"prompts": PROMPTS, "group_size": GROUP, "max_new_tokens": MAX_NEW, "lora_r": LORA_R,
                     "lora_alpha": LORA_ALPHA, "lr": LR, "steps": args.steps, "warmup": args.warmup,
                     "interleaved": True,
                     "threads": args.threads, "seed": args.seed, "device": "cpu"},
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "loadavg_start": load0, "loadavg_end": list(os.getloadavg())},
        "ratio_trl_over_ours": by["trl"]["step_s_median"] / by["ours"]["step_s_median"] if "trl" in by else None,
        "variants": rows,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "trl_step.json").write_text(json.dumps(result, indent=1))
    write_markdown(out / "trl_step.md", result)
    log.info("wrote %s/trl_step.{json,md}", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
