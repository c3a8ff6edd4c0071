"""Strict TOML -> nested dataclasses: unknown keys and wrong types are refused with a message
naming the dotted key, so a misspelled setting never silently falls back to a default."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal, get_args, get_origin, get_type_hints


class ConfigError(ValueError):
    """A config value was refused; ``key`` is the dotted path of the offending setting."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"config key '{key}': {reason}")
        self.key = key


def build(cls: type, data: Any, prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from a mapping, recursively, validating every key."""
    if not isinstance(data, dict):
        raise ConfigError(prefix or "<root>", f"expected a table, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
        raise ConfigError(key, f"unknown key (known: {', '.join(sorted(fields))})")
    kwargs = {name: _coerce(hints[name], value, f"{prefix}.{name}" if prefix else name)
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as err:
        raise ConfigError(named_key(str(err), prefix), str(err)) from None


# A refusal that starts with the dotted key it is about: "federation.rounds must be >= 1",
# "clients.a.eval_data: ...", "secure_sum.options.weights = 'server' ...", "clients: ...".
_NAMED = re.compile(r"^([A-Za-z_][\w-]*(?:\.[\w\[\]-]+)+)(?=[ :=]|$)|^([A-Za-z_][\w-]*)(?=:)")


def named_key(message: str, prefix: str = "") -> str:
    """The key a section's refusal names first, when it lies in the section ``prefix`` (so the
    error's key is ``federation.rounds``, not ``federation``); else the section itself."""
    m = _NAMED.match(message)
    key = (m.group(1) or m.group(2)) if m else ""
    if not key or (prefix and key != prefix and not key.startswith(prefix + ".")):
        return prefix or "<root>"
    return key


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, key)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if origin is Literal:
        if value not in args:
            raise ConfigError(key, f"{value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(key, f"expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table, got {type(value).__name__}")
        _kt, vt = args if args else (Any, Any)
        return {k: _coerce(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    raise ConfigError(key, f"unsupported type {tp}")


def set_dotted(raw: dict, dotted: str, value: Any) -> None:
    """Set ``raw["a"]["b"] = value`` for ``dotted = "a.b"``, creating tables on the way."""
    node = raw
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain TOML/JSON-able structure (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj
