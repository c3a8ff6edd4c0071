"""A SumClient's protocol state between Flower messages, kept in the node's Context.state.

Flower starts a new ClientApp process per message, and the masked client keeps its round
secrets in memory, so the whole client object is pickled into the node's Context.state after
every stage and restored before the next. Context.state stays in the SuperNode's memory (never
sent to the SuperLink, never written to disk); a restarted SuperNode forgets it, which is a
dropout. Cryptography keys are pickled as raw bytes; the long-term identity key is not pickled
at all but reloaded from the node's 0600 state folder. Unpickling is restricted to the
classes a client is made of.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)

from ..secure_sum.base import SumClient
from ..secure_sum.masked.keys import load_identity

_RAW = (serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
_RAW_PUB = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
_IDENTITY = "identity"
_CLASS_PREFIX = "secure_fgrpo.secure_sum."  # classes only: no function of ours is callable
_ALLOWED = {("builtins", n) for n in ("set", "frozenset", "bytearray", "complex", "slice")} | {
    ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"), ("collections", "OrderedDict")}
_KEY_LOADERS = {
    "X25519PrivateKey": X25519PrivateKey.from_private_bytes,
    "X25519PublicKey": X25519PublicKey.from_public_bytes,
    "Ed25519PrivateKey": Ed25519PrivateKey.from_private_bytes,
    "Ed25519PublicKey": Ed25519PublicKey.from_public_bytes,
}


class StateError(ValueError):
    """The stored state cannot be restored (corrupt, or from another code version)."""


def _load_key(kind: str, raw: bytes) -> Any:
    return _KEY_LOADERS[kind](raw)


class _Pickler(pickle.Pickler):
    def __init__(self, fh: io.BytesIO, identity: Ed25519PrivateKey | None) -> None:
        super().__init__(fh, protocol=pickle.HIGHEST_PROTOCOL)
        self._identity = identity

    def persistent_id(self, obj: Any) -> str | None:
        return _IDENTITY if obj is not None and obj is self._identity else None

    def reducer_override(self, obj: Any) -> Any:
        for kind, typ in (("X25519PrivateKey", X25519PrivateKey), ("Ed25519PrivateKey", Ed25519PrivateKey)):
            if isinstance(obj, typ):
                return _load_key, (kind, obj.private_bytes(*_RAW))
        for kind, pub in (("X25519PublicKey", X25519PublicKey), ("Ed25519PublicKey", Ed25519PublicKey)):
            if isinstance(obj, pub):
                return _load_key, (kind, obj.public_bytes(*_RAW_PUB))
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: io.BytesIO, state_dir: Path) -> None:
        super().__init__(fh)
        self._state_dir = state_dir

    def persistent_load(self, pid: Any) -> Any:
        if pid != _IDENTITY:
            raise StateError(f"client state: unknown persistent reference {pid!r}")
        return load_identity(self._state_dir)

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == "_load_key":
            return _load_key
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.startswith(_CLASS_PREFIX):
            found = super().find_class(module, name)
            if isinstance(found, type):
                return found
        raise StateError(f"client state: refusing to restore {module}.{name}")


def dump_client(client: SumClient) -> bytes:
    fh = io.BytesIO()
    _Pickler(fh, getattr(client, "_identity", None)).dump(client)
    return fh.getvalue()


def load_client(raw: bytes, state_dir: Path) -> SumClient:
    try:
        client = _Unpickler(io.BytesIO(raw), Path(state_dir)).load()
    except StateError:
        raise
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError) as err:
        raise StateError(f"client state: cannot restore ({err.__class__.__name__})") from None
    if not isinstance(client, SumClient):
        raise StateError("client state: does not hold a SumClient")
    return client
