"""Shared fixtures. Model-backed tests use a quick-build tiny model (a short warm start) so
the suite stays fast; the demo uses the full warm start. Both are the same code path."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from secure_fgrpo.configio import set_dotted
from secure_fgrpo.model.tiny import TinyModelSpec, embedded_model_path

QUICK = TinyModelSpec(warm_steps=40, clean_steps=30, warm_batch=32, seed=1)
QUICK_TABLE = asdict(QUICK)


@pytest.fixture(scope="session", autouse=True)
def _single_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def quick_model_dir() -> Path:
    return embedded_model_path(QUICK)


def small_run(**over: object) -> dict:
    """A 3-client federation small enough for tests (seconds per round)."""
    raw: dict = {
        "seed": 3,
        "model": {"embedded": dict(QUICK_TABLE), "lora": {"r": 4}},
        "federation": {"rounds": 2, "workers": 1},
        "grpo": {"steps": 2, "group_size": 4, "prompts_per_step": 4, "oversample": 6,
                 "sampling": {"max_new_tokens": 6}, "loss": {"max_completion_length": 6}},
        "eval": {"max_new_tokens": 6},
        "data": {"train_size": 40, "eval_size": 8, "global_eval_size": 16},
        "clients": [
            {"name": "a", "families": {"vitals": 1.0}, "reward": {"scale": 1.0}},
            {"name": "b", "families": {"choice": 1.0}, "reward": {"scale": 10.0}},
            {"name": "c", "families": {"unit": 0.5, "vitals": 0.5}, "reward": {"partial": True}},
        ],
    }
    for dotted, value in over.items():
        set_dotted(raw, dotted, value)
    return raw
