"""The demo federations: four institutions with different task mixes and reward scales, on the
embedded model (``DEMO``) or on SmolLM2-135M-Instruct with clinical calculations (``REAL_DEMO``)."""

from __future__ import annotations

import copy

from .config import RunConfig, config_from_dict
from .configio import set_dotted

DEMO: dict = {
    "seed": 0,
    "federation": {"rounds": 6, "strategy": "fgrpo", "workers": 2},
    "grpo": {"steps": 6},
    "clients": [
        # Each institution scores correctness in its own units: the heterogeneity FGRPO is for.
        {"name": "st-mary", "families": {"unit": 0.5, "vitals": 0.5}, "reward": {"scale": 1.0}},
        {"name": "northgate", "families": {"vitals": 0.5, "choice": 0.5}, "reward": {"scale": 10.0}},
        {"name": "riverside", "families": {"dose": 0.5, "unit": 0.5}, "reward": {"scale": 1.0, "partial": True}},
        {"name": "lakeside", "families": {"choice": 0.5, "dose": 0.5},
         "reward": {"scale": 1.0, "format_weight": 0.25}},
    ],
}


# Where example-level DP-SGD keeps most of the gain on the demo (benchmarks/privacy_utility.py
# measures it; its README explains each lever): one LoRA rank, since the noise is added to every
# coordinate; a pool of 1200 records per client so a Poisson batch of ~60 records costs little ε;
# a per-record clip below the typical gradient norm; a larger learning rate; equal weights (FGRPO's
# e_i would come from noisy reward sums at ~4% more gradient noise; on this demo FGRPO ≈ FedAvg).
DP_SGD_SETTINGS: dict = {"model.lora.r": 1, "grpo.lr": 0.006, "data.train_size": 1200,
                         "federation.strategy": "uniform"}
DP_SGD_EXAMPLE_LEVEL: dict = {"max_grad_norm": 0.1, "sample_rate": 0.05}
# On a GPU the batch is cheap: q = 0.25 (~300 records a step) cuts the noise on the mean
# gradient to ~40% for the same ε (benchmarks/results/privacy_utility_gpu_q25*.md).
DP_SGD_EXAMPLE_LEVEL_GPU: dict = {**DP_SGD_EXAMPLE_LEVEL, "sample_rate": 0.25}


# The real-model demo: four hospitals by specialty, each scoring in its own units, on the rule-based
# scores with each criterion's points already given (tasks/medcalc_points.py, ``*_points``): zero-shot
# the model sometimes gets the total (benchmarks/results/medcalc_baseline_points.md); on the formula
# levels it never does. Nephrology has no rule-based score among the calculators sampled, so the renal
# unit sees its patients' pneumonia (CURB-65 counts BUN) and atrial-fibrillation scores. Sized for 2 CPU
# cores: few prompts x G, short completions (an answer is one sentence), LoRA r = 2, one worker with
# both threads (the model is 134.5M parameters: two workers would each hold a copy and halve each
# one's threads). Partial credit and a format term give the reward a gradient where exact accuracy is 0.
# Measured: 6 min on 2 idle cores; longer training reached the answer prior, then collapsed onto the
# commonest score (benchmarks/results/real_demo_long.md), so the size stays small.
_TOKENS = 24
REAL_DEMO: dict = {
    "seed": 0,
    "model": {"path": "smollm2-135m-instruct",
              "lora": {"r": 2, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}},
    "federation": {"rounds": 3, "strategy": "fgrpo", "workers": 1},
    "secure_sum": {"backend": "masked"},
    "grpo": {"steps": 1, "group_size": 4, "prompts_per_step": 4, "oversample": 6, "lr": 5e-3,
             "sampling": {"max_new_tokens": _TOKENS, "temperature": 0.7},
             "loss": {"max_completion_length": _TOKENS}},
    "eval": {"max_new_tokens": _TOKENS, "temperature": 0.7},
    "data": {"train_size": 48, "eval_size": 2, "global_eval_size": 64},
    "clients": [
        {"name": "heart-centre", "families": {"cardiology_points": 0.7, "general_medicine_points": 0.3},
         "reward": {"scale": 1.0, "partial": True, "format_weight": 0.25}},
        {"name": "renal-unit", "families": {"general_medicine_points": 0.6, "cardiology_points": 0.4},
         "reward": {"scale": 10.0, "partial": True, "format_weight": 0.25}},
        {"name": "liver-clinic", "families": {"hepatology_points": 0.7, "general_medicine_points": 0.3},
         "reward": {"scale": 1.0, "partial": True, "format_weight": 0.5}},
        {"name": "city-general", "families": {"general_medicine_points": 0.5, "cardiology_points": 0.25,
                                              "hepatology_points": 0.25},
         "reward": {"scale": 5.0, "partial": True, "format_weight": 0.25}},
    ],
}
# --device cuda: the same federation at a size that shows what the model can reach (untested: no
# GPU was lent while this was written).
REAL_DEMO_GPU: dict = {"federation.rounds": 10, "federation.workers": 1, "grpo.steps": 4, "grpo.group_size": 8,
                       "grpo.prompts_per_step": 8, "grpo.oversample": 16, "data.train_size": 400,
                       "data.global_eval_size": 400, "model.lora.r": 8}
DEMOS: dict[str, dict] = {"embedded": DEMO, "smollm2": REAL_DEMO}


def demo_config(model: str = "embedded", **overrides: object) -> RunConfig:
    """A demo config (``DEMOS``) with dotted overrides, e.g. ``{"secure_sum.backend": "masked"}``."""
    if model not in DEMOS:
        raise ValueError(f"--model {model!r}: expected one of {', '.join(DEMOS)}")
    raw = copy.deepcopy(DEMOS[model])
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    return config_from_dict(raw)
