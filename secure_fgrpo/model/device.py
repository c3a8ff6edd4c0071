"""Where the model runs: ``model.device`` resolved against what this machine has.

The default is the CPU (the CI machine; non-private runs reproduce bit for bit); "cuda" or "cuda:N" puts
the policy, rollouts, log-probs and DP-SGD's per-sample gradients on a GPU; "auto" takes the GPU
when there is one. Secret noise is still drawn on the CPU from the cryptographic stream and only
copied to the device (privacy/noise.py)."""

from __future__ import annotations

import re

import torch

from ..configio import ConfigError

_NAME = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


def check_device_name(name: str) -> None:
    """Refuse a malformed name when the config is read (availability is checked at run time)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError("model.device", f"must be 'cpu', 'auto', 'cuda' or 'cuda:N', got {name!r}")


def resolve_device(name: str) -> torch.device:
    """The torch device for ``name`` on this machine; a GPU that is not there is an error, not a
    silent fall-back to the CPU (a run would take hours longer than its owner planned)."""
    check_device_name(name)
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if name == "auto":
        return torch.device("cuda")
    if not torch.cuda.is_available():
        raise ConfigError("model.device", f"{name!r} asked for, but torch sees no CUDA device on this machine")
    dev = torch.device(name)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            "model.device", f"{name!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    return dev
