"""Secure-sum backends behind one interface (see base.py)."""

from __future__ import annotations

from typing import Any

from .base import Backend, Message, ProtocolError, RoundAborted, SumClient, SumOutcome, SumServer, SumSpec
from .driver import DropSchedule, run_secure_sum

BACKENDS = ("plaintext", "masked", "ckks")


def make_backend(name: str, options: dict[str, Any] | None = None) -> Backend:
    """Build a backend by name. ``options`` is the config's ``[secure_sum]`` table minus
    ``backend``; each backend rejects keys it does not know, naming them."""
    options = dict(options or {})
    if name == "plaintext":
        if options:
            raise ValueError(f"secure_sum.options: unknown option(s) for plaintext: {', '.join(sorted(options))}")
        from .plaintext import PlaintextBackend

        return PlaintextBackend()
    if name == "masked":
        from .masked import MaskedBackend

        return MaskedBackend(**options)
    if name == "ckks":
        from .ckks import CKKSBackend

        return CKKSBackend(**options)
    raise ValueError(f"secure_sum.backend: unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = [
    "Backend", "DropSchedule", "Message", "ProtocolError", "RoundAborted", "SumClient",
    "SumOutcome", "SumServer", "SumSpec", "make_backend", "run_secure_sum",
]
