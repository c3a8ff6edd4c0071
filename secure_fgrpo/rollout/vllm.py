"""Rollouts with vLLM (a CUDA GPU and the optional ``vllm`` extra).

One ``vllm.LLM`` per process holds the base model (``enable_lora=True``) and stays loaded across
rounds. The adapter is never merged into its weights: before each batch the training model's
adapter is hashed; changed weights are saved with peft to a private temporary folder and attached
with a fresh ``LoRARequest`` id (vllm_support.AdapterIds), unchanged weights reuse the loaded one.

Prompts are rendered and tokenized by the same code as the transformers backend, sampled with
the same parameters (vllm_support.sampling_kwargs), and the completions go through the same
assembly and decoding (base.assemble_batch), so grading is identical. vLLM returns no log-probs
(none are requested, and any returned is an error) and RolloutBatch has no field for them: the
GRPO ratio's come from the training model (grpo/logprobs.py).

vLLM's LoRA kernels take bfloat16/float16 activations only, so the sampling copy of the policy
runs in bfloat16 while the training model (and every log-prob the loss reads) stays float32.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from transformers import PreTrainedTokenizerBase

from ..configio import ConfigError
from ..model.chat import encode_prompts
from .base import (
    RolloutBackend,
    RolloutBatch,
    SamplingSpec,
    assemble_batch,
    suppressed_tokens,
)

if TYPE_CHECKING:
    from ..model.lora import CausalLM

from .vllm_support import (
    AdapterIds,
    adapter_digest,
    allowed_tokens,
    completion_tokens,
    lora_rank_bucket,
    prompt_seeds,
    refusal,
    sampling_kwargs,
    vllm_missing,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineSettings:
    """How the per-process engine is built. ``gpu_memory_utilization`` is vLLM's share of the
    GPU (weights + KV cache): the training model and its optimizer live on the same GPU."""

    gpu_memory_utilization: float = 0.3
    dtype: str = "bfloat16"  # vLLM's LoRA kernels refuse float32 activations
    enforce_eager: bool = False
    seed: int = 0


class _Engine:
    """The process's ``LLM``, its adapter ids and the private folder of saved adapters."""

    def __init__(self, base_path: str, max_lora_rank: int, settings: EngineSettings) -> None:
        from vllm import LLM

        self.key = (base_path, max_lora_rank, settings)
        # Prompts go in as token ids and completions come back as ids (decoded by assemble_batch):
        # vLLM never tokenizes, so a tokenizer it would rebuild differently cannot matter.
        self.llm = LLM(model=base_path, skip_tokenizer_init=True, enable_lora=True, max_loras=1,
                       max_lora_rank=max_lora_rank, dtype=settings.dtype,
                       gpu_memory_utilization=settings.gpu_memory_utilization, enforce_eager=settings.enforce_eager,
                       seed=settings.seed, generation_config="vllm")  # no generation_config.json defaults
        self.ids = AdapterIds()
        self.folder = Path(tempfile.mkdtemp(prefix="secure_fgrpo-vllm-"))  # 0700: a client's adapter is private
        self.request: Any = None
        atexit.register(self.close)

    def adapter(self, model: CausalLM) -> Any:
        """The LoRARequest for ``model``'s current adapter weights (saved first if they changed)."""
        from peft.utils import get_peft_model_state_dict
        from vllm.lora.request import LoRARequest

        digest = adapter_digest(get_peft_model_state_dict(model))
        lora_id, new = self.ids.lookup(digest)
        if not new:
            return self.request
        path = self.folder / str(lora_id)
        model.save_pretrained(str(path))
        for f in path.rglob("*"):
            if f.is_file():
                os.chmod(f, 0o600)
        old = self.request
        self.request = LoRARequest(AdapterIds.name(lora_id, digest), lora_id, str(path))
        if old is not None:  # its id is never used again; free vLLM's slot and our copy
            self.llm.llm_engine.remove_lora(old.lora_int_id)
            shutil.rmtree(old.lora_path, ignore_errors=True)
        log.debug("vllm: adapter %s -> LoRA id %d", digest[:12], lora_id)
        return self.request

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)  # only the folder this engine made


_ENGINE: _Engine | None = None


def _engine_for(base_path: str, max_lora_rank: int, settings: EngineSettings) -> _Engine:
    """The process's engine; a different base model or rank replaces it (one LLM per process)."""
    global _ENGINE
    key = (base_path, max_lora_rank, settings)
    if _ENGINE is None or _ENGINE.key != key:
        if _ENGINE is not None:
            _ENGINE.close()
            _ENGINE = None
            gc.collect()
            torch.cuda.empty_cache()
        _ENGINE = _Engine(base_path, max_lora_rank, settings)
    return _ENGINE


def base_model_folder(model: CausalLM) -> str:
    """The local folder the training model was loaded from: vLLM loads the same weights."""
    path = str(getattr(model.config, "_name_or_path", "") or "")
    if not (Path(path) / "config.json").is_file():
        raise ValueError(f"model.rollout = 'vllm': the base model {path!r} is not a local model folder vLLM can load")
    return path


class VLLMRollout(RolloutBackend):
    def __init__(self, settings: EngineSettings | None = None) -> None:
        missing = vllm_missing()
        if missing:
            raise ConfigError("model.rollout", refusal(missing))
        self.settings = settings or EngineSettings()

    def generate(self, model: CausalLM, tok: PreTrainedTokenizerBase, prompts: list[str],
                 group_size: int, sampling: SamplingSpec, seed: int) -> RolloutBatch:
        from vllm import SamplingParams

        peft_cfg = getattr(model, "peft_config", None)
        rank = lora_rank_bucket(peft_cfg[model.active_adapter].r) if peft_cfg else 1
        engine = _engine_for(base_model_folder(model), rank, self.settings)
        lora = engine.adapter(model) if peft_cfg else None
        enc = encode_prompts(tok, prompts)  # the same rendering, tokens and left padding as HFRollout
        rows = [ids[att.bool()].tolist() for ids, att in zip(enc["input_ids"], enc["attention_mask"], strict=False)]
        allowed = allowed_tokens(model.config.vocab_size, suppressed_tokens(tok))
        params = [SamplingParams(**sampling_kwargs(sampling, group_size, s, tok.eos_token_id, allowed))
                  for s in prompt_seeds(seed, len(prompts), group_size)]
        outs = engine.llm.generate([{"prompt_token_ids": r} for r in rows], params, lora_request=lora,
                                   use_tqdm=False)
        comps = []
        for out in outs:
            for c in sorted(out.outputs, key=lambda c: c.index):
                if c.logprobs is not None:  # none were requested; none may travel on towards the loss
                    raise RuntimeError("vllm returned log-probs: the GRPO ratio's must come from the training model")
                comps.append(completion_tokens(list(c.token_ids), c.finish_reason == "stop", tok.eos_token_id,
                                               tok.pad_token_id, sampling.max_new_tokens))
        prompt_ids = enc["input_ids"].repeat_interleave(group_size, 0)
        prompt_att = enc["attention_mask"].repeat_interleave(group_size, 0)
        seq = torch.cat([prompt_ids, torch.tensor(comps, dtype=prompt_ids.dtype)], 1)
        return assemble_batch(tok, seq.to(model.device), prompt_att.to(model.device), prompt_ids.shape[1],
                              sampling.max_new_tokens)
