"""The parts of the vLLM backend that need neither vLLM nor a GPU, so they are tested on every
machine: whether vLLM can run here, the sampling parameters that reproduce the transformers
backend's sampling, the per-prompt seeds, and the LoRA adapter ids.

Why the adapter ids matter: vLLM caches a loaded adapter by its integer id and never checks
whether the files behind that id changed. Reusing an id after a round changed the weights would
silently sample from the previous round's adapter, so an id belongs to one weight digest only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
from dataclasses import dataclass, field
from typing import Any

import torch

from .base import TOP_K, TOP_P, SamplingSpec

VLLM_VERSION = "0.30.0"  # the pin of the `vllm` extra (pyproject.toml)
INSTALL_HINT = f"pip install 'secure_fgrpo[vllm]' (vllm=={VLLM_VERSION})"
MIN_TEMPERATURE = 1e-2  # vLLM raises any lower temperature to this; transformers would not


def vllm_missing() -> list[str]:
    """What this machine lacks for ``model.rollout = "vllm"`` (empty when it can run).
    ``find_spec`` looks for the package without importing it (importing vLLM takes seconds)."""
    missing = []
    try:
        has_vllm = importlib.util.find_spec("vllm") is not None
    except (ImportError, ValueError):
        has_vllm = False
    if not has_vllm:
        missing.append(f"the vllm package ({INSTALL_HINT})")
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (torch.cuda.is_available() is False)")
    return missing


def refusal(missing: list[str]) -> str:
    """The one line that refuses ``model.rollout = "vllm"`` for what is ``missing``."""
    return (f"'vllm' needs a CUDA GPU and the vllm package; this machine lacks {' and '.join(missing)}; "
            "use 'transformers'")


def sampling_kwargs(spec: SamplingSpec, group_size: int, seed: int, eos_token_id: int,
                    allowed_token_ids: list[int]) -> dict[str, Any]:
    """``SamplingParams`` arguments for one prompt's group, the same sampling as HFRollout:
    the full softmax at ``spec.temperature`` (no top-k / top-p), at most ``max_new_tokens``,
    stop at EOS, the suppressed ids masked to -inf (``allowed_token_ids`` is everything else).
    vLLM seeds the group's j-th sample with ``seed + j``. No log-probs are requested: the GRPO
    ratio's log-probs come from the training model (grpo/logprobs.py), never from vLLM."""
    if spec.temperature < MIN_TEMPERATURE:
        raise ValueError(f"sampling temperature {spec.temperature} is below {MIN_TEMPERATURE}: vLLM would raise it "
                         "to that (a different distribution from the transformers backend's)")
    return {
        "n": group_size, "temperature": spec.temperature, "top_p": TOP_P, "top_k": TOP_K,
        "max_tokens": spec.max_new_tokens, "seed": seed, "stop_token_ids": [eos_token_id], "ignore_eos": False,
        "allowed_token_ids": allowed_token_ids, "logprobs": None, "prompt_logprobs": None,
        "detokenize": False,  # texts are decoded by assemble_batch, as for every backend
    }


def allowed_tokens(vocab_size: int, suppressed: list[int]) -> list[int]:
    """Every id of the model's vocabulary except the ``suppressed`` ones."""
    never = set(suppressed)
    return [t for t in range(vocab_size) if t not in never]


def prompt_seeds(seed: int, prompts: int, group_size: int) -> list[int]:
    """One seed per prompt from the batch's ``seed``, spaced ``group_size`` apart so the
    samples' seeds (``seed_i + j``) never coincide across prompts."""
    base = random.Random(seed).getrandbits(40)
    return [base + i * group_size for i in range(prompts)]


def adapter_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the adapter's tensors (names, shapes, dtypes and bytes, in name order)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass
class AdapterIds:
    """vLLM LoRA ids: the current weights keep their id (vLLM reuses the loaded adapter);
    changed weights get the next id, never one used before, even if the weights return to an
    earlier digest (that adapter's files are gone by then). Ids start at 1 (vLLM's rule)."""

    counter: int = 0
    current: tuple[str, int] | None = field(default=None)  # (digest, id)

    def lookup(self, digest: str) -> tuple[int, bool]:
        """(id for ``digest``, whether it is new: its files must be written before use)."""
        if self.current is not None and self.current[0] == digest:
            return self.current[1], False
        self.counter += 1
        self.current = (digest, self.counter)
        return self.counter, True

    @staticmethod
    def name(lora_id: int, digest: str) -> str:
        """vLLM compares LoRA requests by name: the name carries the id and the digest."""
        return f"secure_fgrpo-{lora_id}-{digest[:16]}"


LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM 0.30's allowed max_lora_rank values


def lora_rank_bucket(r: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that holds an adapter of rank ``r``."""
    for bucket in LORA_RANKS:
        if r <= bucket:
            return bucket
    raise ValueError(f"lora.r = {r} is above vLLM's largest max_lora_rank ({LORA_RANKS[-1]})")


def completion_tokens(token_ids: list[int], stopped: bool, eos_token_id: int, pad_token_id: int,
                      max_new: int) -> list[int]:
    """One completion as the transformers backend lays it out: the generated ids, EOS last when
    generation stopped on it (added if vLLM left it out), right-padded to ``max_new``."""
    ids = list(token_ids[:max_new])
    if stopped and eos_token_id not in ids and len(ids) < max_new:
        ids.append(eos_token_id)
    return ids + [pad_token_id] * (max_new - len(ids))
