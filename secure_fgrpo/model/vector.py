"""Adapter ⇄ one flat float32 vector with a named, stable layout.

The layout is the sorted list of (name, shape) of the adapter parameters that train; the
secure sum runs over exactly this vector. Round-trips bit-exactly.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from peft import PeftModel


@dataclass(frozen=True)
class VectorLayout:
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def size(self) -> int:
        return int(sum(int(np.prod(s)) for s in self.shapes))

    def fingerprint(self) -> str:
        blob = json.dumps([list(self.names), [list(s) for s in self.shapes]])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def of(cls, model: PeftModel) -> VectorLayout:
        params = sorted((n, tuple(p.shape)) for n, p in model.named_parameters() if p.requires_grad)
        if not params:
            raise ValueError("model has no trainable parameters: was the adapter attached?")
        return cls(tuple(n for n, _ in params), tuple(s for _, s in params))


def to_vector(model: PeftModel, layout: VectorLayout) -> np.ndarray:
    named = dict(model.named_parameters())
    return np.concatenate([named[n].detach().cpu().reshape(-1).numpy().astype(np.float32) for n in layout.names])


def load_vector(model: PeftModel, layout: VectorLayout, vector: np.ndarray) -> None:
    if vector.shape != (layout.size,):
        raise ValueError(f"vector has shape {vector.shape}, layout expects ({layout.size},)")
    named = dict(model.named_parameters())
    offset = 0
    with torch.no_grad():
        for name, shape in zip(layout.names, layout.shapes, strict=True):
            n = int(np.prod(shape))
            chunk = torch.from_numpy(np.ascontiguousarray(vector[offset : offset + n], dtype=np.float32))
            named[name].copy_(chunk.reshape(shape))
            offset += n
