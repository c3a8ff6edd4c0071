"""Rollouts with transformers' ``generate`` (CPU or GPU)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from transformers import PreTrainedTokenizerBase

from ..model.chat import encode_prompts
from .base import RolloutBackend, RolloutBatch, SamplingSpec

if TYPE_CHECKING:
    from ..model.lora import CausalLM


class HFRollout(RolloutBackend):
    def generate(self, model: CausalLM, tok: PreTrainedTokenizerBase, prompts: list[str],
                 group_size: int, sampling: SamplingSpec, seed: int) -> RolloutBatch:
        enc = encode_prompts(tok, [p for p in prompts for _ in range(group_size)])
        ids, att = enc["input_ids"].to(model.device), enc["attention_mask"].to(model.device)
        never = sorted({t for t in (tok.pad_token_id, tok.bos_token_id, tok.unk_token_id)
                        if t is not None and t != tok.eos_token_id})
        was_training = model.training
        model.eval()
        gpu = [model.device] if model.device.type == "cuda" else []
        with torch.random.fork_rng(devices=gpu), torch.no_grad():
            torch.manual_seed(seed)
            seq = model.generate(  # type: ignore[operator]  # PeftModel forwards generate to its base model
                input_ids=ids, attention_mask=att,
                do_sample=True, temperature=sampling.temperature, top_k=0, top_p=1.0,
                max_new_tokens=sampling.max_new_tokens, suppress_tokens=never or None,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            )
        model.train(was_training)
        return _assemble(tok, seq, att, ids.shape[1], sampling.max_new_tokens)


def _assemble(tok: PreTrainedTokenizerBase, seq: torch.Tensor, prompt_att: torch.Tensor,
              prompt_len: int, max_new: int) -> RolloutBatch:
    comp = seq[:, prompt_len:]
    if comp.shape[1] < max_new:  # generation stopped early for every row
        pad = torch.full((comp.shape[0], max_new - comp.shape[1]), tok.pad_token_id, dtype=comp.dtype,
                         device=comp.device)
        comp = torch.cat([comp, pad], 1)
    is_eos = comp == tok.eos_token_id
    finished = is_eos.any(1)
    first_eos = torch.where(finished, is_eos.int().argmax(1), torch.full_like(finished, max_new, dtype=torch.long))
    steps = torch.arange(max_new, device=comp.device).unsqueeze(0)
    mask = (steps <= first_eos.unsqueeze(1)).long()
    mask = torch.where(finished.unsqueeze(1), mask, (steps < max_new).long())
    comp = torch.where(mask.bool(), comp, torch.full_like(comp, tok.pad_token_id))
    texts: list[str] = []
    for row, end in zip(comp.tolist(), first_eos.tolist(), strict=True):
        texts.append(cast(str, tok.decode(row[: min(end, max_new)], skip_special_tokens=True)))  # one row: a str
    return RolloutBatch(
        sequences=torch.cat([seq[:, :prompt_len], comp], 1),
        attention_mask=torch.cat([prompt_att, mask], 1),
        completion_mask=mask,
        prompt_len=prompt_len,
        texts=texts,
        finished=finished.tolist(),
    )
