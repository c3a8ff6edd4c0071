"""Load the base model: the embedded tiny model by default, or any causal LM by local path
(or hub id where a hub is reachable). Both go through the same code."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .tiny import TinyModelSpec, embedded_model_path

EMBEDDED = "embedded"


def resolve_model_path(name_or_path: str, spec: TinyModelSpec | None = None) -> str:
    return str(embedded_model_path(spec)) if name_or_path == EMBEDDED else name_or_path


def load_base(name_or_path: str, spec: TinyModelSpec | None = None) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Frozen base model (float32, eval mode) and its left-padding tokenizer."""
    path = resolve_model_path(name_or_path, spec)
    if not name_or_path == EMBEDDED and not Path(path).exists() and "/" not in path:
        raise FileNotFoundError(f"model.path: {path!r} is neither 'embedded', a local directory, nor a hub id")
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tok
