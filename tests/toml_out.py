"""A minimal TOML writer for tests that drive ``secure-fgrpo run CONFIG.toml`` (the standard
library reads TOML but does not write it): tables, arrays of tables, inline scalars."""

from __future__ import annotations

import json
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string is a JSON string for what tests write
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def dumps(raw: dict, prefix: str = "") -> str:
    scalars = {k: v for k, v in raw.items() if not isinstance(v, dict) and not _tables(v)}
    lines = [f"{json.dumps(k)} = {_value(v)}" for k, v in scalars.items()]
    for k, v in raw.items():
        name = f"{prefix}.{json.dumps(k)}" if prefix else json.dumps(k)
        if isinstance(v, dict):
            lines += ["", f"[{name}]", dumps(v, name)]
        elif _tables(v):
            for item in v:
                lines += ["", f"[[{name}]]", dumps(item, name)]
    return "\n".join(lines)


def _tables(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)
