"""Rollout throughput: tokens per second of GRPO rollouts on the real model (SmolLM2-135M-Instruct
with a LoRA adapter) on clinical vignettes, transformers backend vs the vLLM backend, side by side
in one run.

Shapes: the real-model demo's, ``--prompts`` vignettes drawn from the four specialties (about
110-145 prompt tokens with the chat template) x G completions of at most T new tokens, for each
(G, T) in ``--shapes`` (default 4x48 and 8x64). Every backend gets the same prompts and seeds;
the adapter has non-zero B (a trained adapter's cost, not a no-op's).

Columns: ``transformers`` on the CPU (always), ``transformers`` on the GPU and ``vllm`` (only
on a machine with CUDA and the vllm extra; otherwise marked "not run: ..." with the reason).
Generated tokens count every completion token up to and including EOS; ``slot tok/s`` counts
the full G x T budget (what a padded batch pays for). vLLM's engine start (model load, CUDA graph
capture) is timed separately and not in its tokens per second: it happens once per process.

    nice -n 10 .venv/bin/python benchmarks/rollout_throughput.py [--reps 2] [--threads 1] [--prompts 4]

writes benchmarks/results/rollout_throughput.{json,md} (--quick: 1 rep, one small shape, to a temp folder).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from secure_fgrpo.model.load import load_base
from secure_fgrpo.model.lora import LoraSpec, attach_lora, randomize_b
from secure_fgrpo.rollout import SamplingSpec, make_rollout
from secure_fgrpo.rollout.base import RolloutBackend, RolloutBatch
from secure_fgrpo.rollout.vllm_support import vllm_missing

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
MODEL = "smollm2-135m-instruct"
log = logging.getLogger("rollout_throughput")
COLUMNS = ("transformers_cpu", "transformers_cuda", "vllm")


def policy(device: str, lora: LoraSpec, seed: int = 0) -> tuple[Any, Any]:
    """SmolLM2 with an adapter whose B is drawn at random (seeded), on ``device``."""
    base, tok = load_base(MODEL, device=device)
    model = attach_lora(base, lora)
    randomize_b(model, 0.02, torch.Generator().manual_seed(seed))
    return model, tok


def time_backend(backend: RolloutBackend, model: Any, tok: Any, prompts: list[str], g: int, t: int,
                 reps: int, warmup: int, seed: int) -> dict[str, Any]:
    """Median wall time of ``reps`` rollouts after ``warmup``; tokens from the last one."""
    times: list[float] = []
    cpu: list[float] = []  # this process's CPU seconds: robust to other jobs on a shared machine
    batch: RolloutBatch | None = None
    for i in range(warmup + reps):
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        batch = backend.generate(model, tok, prompts, g, SamplingSpec(max_new_tokens=t, temperature=1.0), seed + i)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    assert batch is not None
    med = statistics.median(times)
    generated = int(batch.completion_mask.sum())
    return {"times_s": times, "cpu_s": cpu, "median_s": med, "median_cpu_s": statistics.median(cpu),
            "generated_tokens": generated, "slot_tokens": batch.completion_mask.numel(),
            "finished_frac": sum(batch.finished) / len(batch.finished), "tokens_per_s": generated / med,
            "slot_tokens_per_s": batch.completion_mask.numel() / med,
            "tokens_per_cpu_s": generated / statistics.median(cpu)}


def run_column(column: str, prompts: list[str], shapes: list[tuple[int, int]], lora: LoraSpec, reps: int,
               warmup: int) -> dict[str, Any]:
    if column == "transformers_cuda" and not torch.cuda.is_available():
        return {"not_run": "no CUDA GPU"}
    if column == "vllm" and (missing := vllm_missing()):
        return {"not_run": "no CUDA GPU" if any("CUDA" in m for m in missing) else "vllm not installed"}
    device = "cpu" if column == "transformers_cpu" else "cuda"
    model, tok = policy(device, lora)
    out: dict[str, Any] = {"device": str(model.device)}
    t0 = time.perf_counter()
    backend = make_rollout("vllm" if column == "vllm" else "transformers")
    if column == "vllm":  # engine start and the first adapter load, once per process
        backend.generate(model, tok, prompts[:1], 1, SamplingSpec(max_new_tokens=1), 0)
        out["engine_start_s"] = time.perf_counter() - t0
    for g, t in shapes:
        res = time_backend(backend, model, tok, prompts, g, t, reps, warmup, seed=100)
        out[f"G{g}_T{t}"] = res
        log.info("%s G=%d T=%d: %.1f tok/s (%d tokens, median %.2f s)", column, g, t, res["tokens_per_s"],
                 res["generated_tokens"], res["median_s"])
    return out


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    cols = result["columns"]
    lines = ["# Rollout throughput: transformers vs vLLM on SmolLM2-135M-Instruct + LoRA, clinical vignettes", "",
             "    " + result["command"], "",
             (f"{result['prompts']} vignettes ({result['prompt_tokens_mean']:.0f} prompt tokens on average, "
             f"{result['prompt_tokens_min']}-{result['prompt_tokens_max']}) x G completions of at most T new tokens, "
             f"temperature 1, LoRA {result['lora']}. Median of {result['reps']} after {result['warmup']} warm-up; "
             f"CPU column on {result['threads']} torch thread(s). tok/s: generated tokens (up to and including "
             "EOS) per wall second; slot tok/s: the G x T budget per wall second; tok per CPU s: generated tokens per "
             "second of this process's CPU time (less sensitive to other jobs on a shared machine)."), "",
             "| G x T | " + " | ".join(f"{c} tok/s (slot tok/s)" for c in COLUMNS) + " | generated tokens | finished |",
             "|---|" + "---|" * (len(COLUMNS) + 2)]
    for g, t in result["shapes"]:
        key, cells, ref = f"G{g}_T{t}", [], None
        for c in COLUMNS:
            r = cols[c].get(key)
            if r is None:
                cells.append(f"not run: {cols[c].get('not_run', '?')}")
                continue
            ref = ref or r
            cells.append(f"{r['tokens_per_s']:.1f} ({r['slot_tokens_per_s']:.1f}); {r['median_s']:.2f} s wall, "
                         f"{r['tokens_per_cpu_s']:.1f} tok per CPU s")
        assert ref is not None
        lines.append(f"| {g} x {t} | " + " | ".join(cells) +
                     f" | {ref['generated_tokens']} / {ref['slot_tokens']} | {ref['finished_frac']:.0%} |")
    if "engine_start_s" in cols["vllm"]:
        lines += ["", (f"vLLM engine start (load, CUDA graphs, first adapter): {cols['vllm']['engine_start_s']:.1f} s, once "
                  "per process.")]
    lines += ["", (f"Versions: {result['versions']}. Machine: {result['machine']}; load average "
              f"{result['load_start']:.2f} at start, {result['load_end']:.2f} at end. Raw times: rollout_throughput.json."), ""]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--shapes", default="4x48,8x64", help="G x T pairs")
    ap.add_argument("--quick", action="store_true", help="1 rep, no warm-up, shape 2x8, results to a temp folder")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.quick:
        args.reps, args.warmup, args.shapes, args.out = 1, 0, "2x8", tempfile.mkdtemp()
    torch.set_num_threads(args.threads)
    import peft
    import transformers

    from secure_fgrpo.model.chat import encode_prompts
    from secure_fgrpo.tasks import sample_problems
    from secure_fgrpo.tasks.medcalc import SPECIALTIES

    shapes = [(int(s.split("x")[0]), int(s.split("x")[1])) for s in args.shapes.split(",")]
    prompts = [p.prompt for p in sample_problems({s: 1.0 for s in SPECIALTIES}, args.prompts, seed=0)]
    lora = LoraSpec()
    load_start = os.getloadavg()[0]
    columns = {}
    for c in COLUMNS:  # one column's model is freed before the next loads
        columns[c] = run_column(c, prompts, shapes, lora, args.reps, args.warmup)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    _, tok = load_base(MODEL)
    lens = encode_prompts(tok, prompts)["attention_mask"].sum(1)
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}"
    if not vllm_missing():
        import vllm  # type: ignore[import-not-found]

        versions += f", vllm {vllm.__version__}"
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    result = {
        "command": "nice -n 10 .venv/bin/python benchmarks/rollout_throughput.py"
                   + (f" --reps {args.reps}" if args.reps != 2 else "")
                   + (f" --warmup {args.warmup}" if args.warmup != 1 else "")
                   + (f" --threads {args.threads}" if args.threads != 1 else "")
                   + (f" --prompts {args.prompts}" if args.prompts != 4 else "")
                   + (f" --shapes {args.shapes}" if args.shapes != "4x48,8x64" else ""),
        "model": MODEL, "lora": f"r={lora.r} alpha={lora.alpha} {lora.mode}, {len(lora.target_modules)} projections",
        "prompts": len(prompts), "prompt_tokens_mean": float(lens.float().mean()),
        "prompt_tokens_min": int(lens.min()), "prompt_tokens_max": int(lens.max()),
        "shapes": shapes, "reps": args.reps, "warmup": args.warmup, "threads": args.threads, "columns": columns,
        "versions": versions, "machine": f"{platform.platform()}, {os.cpu_count()} CPUs shared with other jobs{gpu}",
        "load_start": load_start, "load_end": os.getloadavg()[0],
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rollout_throughput.json").write_text(json.dumps(result, indent=1))
    write_markdown(out / "rollout_throughput.md", result)
    log.info("wrote %s/rollout_throughput.{json,md}", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
