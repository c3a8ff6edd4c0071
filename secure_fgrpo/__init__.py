"""Federated GRPO on LoRA adapters, with relative-gain weights and secure aggregation.

The few names a script needs, importable from the package root::

    import secure_fgrpo as sf

    cfg = sf.load_config("run.toml")  # or sf.demo_config(**{"secure_sum.backend": "masked"})
    summary = sf.Federation(cfg, Path("runs/mine")).run()
    report = sf.audit_run(Path("runs/mine"))  # what the server learned
    backend = sf.make_backend("masked", cfg.backend_options)  # a secure sum on its own

Each is imported on first use, so ``import secure_fgrpo`` loads neither torch nor a backend.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module (under secure_fgrpo) that defines it: the one list of the public API.
_API = {
    "RunConfig": "config",
    "load_config": "config",
    "config_from_dict": "config",
    "ConfigError": "configio",
    "demo_config": "demo",
    "Federation": "federation.runner",
    "RunSummary": "federation.runner",
    "audit_run": "audit.runner",
    "make_backend": "secure_sum",
}

__all__ = ["ConfigError", "Federation", "RunConfig", "RunSummary", "audit_run", "config_from_dict", "demo_config",
           "load_config", "make_backend"]  # = sorted(_API) (tests/test_layers.py)

if TYPE_CHECKING:
    from .audit.runner import audit_run
    from .config import RunConfig, config_from_dict, load_config
    from .configio import ConfigError
    from .demo import demo_config
    from .federation.runner import Federation, RunSummary
    from .secure_sum import make_backend


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
