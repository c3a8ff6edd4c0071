"""Rollouts with transformers' ``generate`` (CPU or GPU)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerBase

from ..model.chat import encode_prompts
from .base import (
    TOP_K,
    TOP_P,
    RolloutBackend,
    RolloutBatch,
    SamplingSpec,
    assemble_batch,
    suppressed_tokens,
)

if TYPE_CHECKING:
    from ..model.lora import CausalLM


class HFRollout(RolloutBackend):
    def generate(self, model: CausalLM, tok: PreTrainedTokenizerBase, prompts: list[str],
                 group_size: int, sampling: SamplingSpec, seed: int) -> RolloutBatch:
        enc = encode_prompts(tok, [p for p in prompts for _ in range(group_size)])
        ids, att = enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device)
        never = suppressed_tokens(tok)
        was_training = model.training
        model.eval()
        gpu = [model.device] if model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=gpu), torch.no_grad():
            torch.manual_seed(seed)
            seq = model.generate(  # type: ignore[operator]  # PeftModel forwards generate to its base model
                input_ids=ids, attention_mask=att,
                do_sample=True, temperature=sampling.temperature, top_k=TOP_K, top_p=TOP_P,
                max_new_tokens=sampling.max_new_tokens, suppress_tokens=never or None,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            )
        model.train(was_training)
        return assemble_batch(tok, seq, att, ids.shape[1], sampling.max_new_tokens)
