"""LoRA through peft. ``ffa`` (FFA-LoRA) freezes A, so every client shares A and the sum of
client deltas of B is exactly the delta of the summed adapter."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal, TypeAlias

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel

# What generation, log-probs and evaluation run on: the base model or its LoRA-wrapped form.
CausalLM: TypeAlias = PreTrainedModel | PeftModel

LoraMode = Literal["standard", "ffa"]
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class LoraSpec:
    r: int = 16
    alpha: int = 32
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    mode: LoraMode = "ffa"
    init_seed: int = 0

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"model.lora.r must be >= 1, got {self.r}")
        if self.mode not in ("standard", "ffa"):
            raise ValueError(f"model.lora.mode must be 'standard' or 'ffa', got {self.mode!r}")
        if not self.target_modules:
            raise ValueError("model.lora.target_modules must not be empty")


def attach_lora(base: PreTrainedModel, spec: LoraSpec) -> PeftModel:
    """Wrap ``base`` with a fresh adapter initialised from ``spec.init_seed`` (so every party
    that builds it gets the same A), freezing A in FFA mode."""
    cfg = LoraConfig(r=spec.r, lora_alpha=spec.alpha, target_modules=list(spec.target_modules),
                     lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft 0.21 calls transformers 5's deprecated is_gradient_checkpointing: not ours to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        torch.manual_seed(spec.init_seed)
        model = get_peft_model(base, cfg)
    if spec.mode == "ffa":
        for name, p in model.named_parameters():
            if "lora_A" in name:
                p.requires_grad_(False)
    return model


def trainable_names(model: PeftModel) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


def randomize_b(model: PeftModel, std: float, gen: torch.Generator) -> None:
    """Draw every ``lora_B`` from N(0, std²) with ``gen``. B starts at zero, so a fresh adapter
    changes nothing: benchmarks and tests that need one with an effect (and its full cost) use this."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(std * torch.randn(p.shape, generator=gen))
