"""The demo federation: four institutions with different task mixes and reward scales."""

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


def demo_config(**overrides: object) -> RunConfig:
    """The demo config with dotted overrides, e.g. ``{"secure_sum.backend": "masked"}``."""
    raw = copy.deepcopy(DEMO)
    for dotted, value in overrides.items():
        set_dotted(raw, dotted, value)
    return config_from_dict(raw)

