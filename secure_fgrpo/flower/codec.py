"""Stage 0's payload over Flower: the transport-neutral codec of federation/setup.py (the one
home of the encoding; flower/ imports it, never the other way round)."""

from __future__ import annotations

from ..federation.setup import CodecError, RoundSetup, vector_digest

__all__ = ["CodecError", "RoundSetup", "vector_digest"]
