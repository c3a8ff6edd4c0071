"""The ``[privacy]`` config section: example-level DP-SGD and client-level noise, both optional.

Every refusal names its dotted key. Checks that need the rest of the run configuration (the
backend, the number of clients, the GRPO settings) live in :func:`check_privacy`, which the run
config calls; checks that need the loaded data (a client's own record count) run again when the
federation starts (see plan.py).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..configio import ConfigError

if TYPE_CHECKING:
    from ..grpo.trainer import LocalSteps

log = logging.getLogger(__name__)

Accountant = Literal["rdp", "prv"]
# local: each client adds the full noise; distributed: each adds a share so that the SUM of the
# threshold t of survivors carries the full noise (Gaussian in floats); skellam: integer noise in
# the masked backend's fixed-point domain (privacy/skellam.py; masked backend only).
ClientMechanism = Literal["local", "distributed", "skellam"]


def _budget(prefix: str, epsilon: float | None, noise: float | None, delta: float) -> None:
    if epsilon is None and noise is None:
        raise ConfigError(f"{prefix}.epsilon", "set a target epsilon or a noise_multiplier (or both: "
                          "the noise is then fixed and epsilon is the budget the run stops at)")
    if epsilon is not None and not (epsilon > 0 and math.isfinite(epsilon)):
        raise ConfigError(f"{prefix}.epsilon", f"must be a finite number > 0, got {epsilon!r}")
    if noise is not None and not (noise > 0 and math.isfinite(noise)):
        raise ConfigError(f"{prefix}.noise_multiplier", f"must be a finite number > 0, got {noise!r}")
    if not 0 < delta < 1:
        raise ConfigError(f"{prefix}.delta", f"must be in (0, 1), got {delta!r}")


@dataclass(frozen=True)
class ExampleLevelConfig:
    """DP-SGD inside local GRPO; one record = one prompt with its whole group of completions."""

    epsilon: float | None = None  # target ε for the whole run; also the budget the run stops at
    noise_multiplier: float | None = None  # σ/C per noisy step; derived from epsilon when unset
    delta: float = 1e-5
    max_grad_norm: float = 0.5  # C: L2 bound on one record's gradient (≈ the median measured on the demo)
    sample_rate: float | None = None  # Poisson rate q per step; default grpo.oversample / pool size
    accountant: Accountant = "rdp"
    # k: noise on the released reward moments (FGRPO's weights) is k times the gradient's,
    # in [0, 1] reward units; their share of the sensitivity is 2/k² (privacy/plan.py).
    reward_noise_ratio: float = 5.0

    def __post_init__(self) -> None:
        p = "privacy.example_level"
        _budget(p, self.epsilon, self.noise_multiplier, self.delta)
        if not (self.reward_noise_ratio > 0 and math.isfinite(self.reward_noise_ratio)):
            raise ConfigError(f"{p}.reward_noise_ratio", f"must be finite and > 0, got {self.reward_noise_ratio!r}")
        if not (self.max_grad_norm > 0 and math.isfinite(self.max_grad_norm)):
            raise ConfigError(f"{p}.max_grad_norm", f"the clip bound must be > 0, got {self.max_grad_norm!r}")
        if self.sample_rate is not None and not 0 < self.sample_rate <= 1:
            raise ConfigError(f"{p}.sample_rate", f"must be in (0, 1], got {self.sample_rate!r}")
        if self.accountant not in ("rdp", "prv"):
            raise ConfigError(f"{p}.accountant", f"must be 'rdp' or 'prv', got {self.accountant!r}")


@dataclass(frozen=True)
class ClientLevelConfig:
    """Gaussian noise on each client's clipped ``[e·Δ, e]``; one record = one institution.

    The delta clip is ``federation.delta_clip``; the weight clip is the strategy's weight bound,
    or ``weight_clip`` when smaller (a lower e_max means less noise for the same ε). With
    ``mechanism = "skellam"`` the noise is integer (privacy/skellam.py), ``noise_multiplier`` is
    σ/Δ2 in fixed-point quanta, and ε comes from the Skellam RDP bound ('rdp' only)."""

    epsilon: float | None = None
    noise_multiplier: float | None = None  # σ / sensitivity; derived from epsilon when unset
    delta: float = 1e-5
    mechanism: ClientMechanism = "distributed"
    weight_clip: float | None = None
    accountant: Accountant = "rdp"

    def __post_init__(self) -> None:
        p = "privacy.client_level"
        _budget(p, self.epsilon, self.noise_multiplier, self.delta)
        if self.mechanism not in ("local", "distributed", "skellam"):
            raise ConfigError(f"{p}.mechanism", f"must be 'local', 'distributed' or 'skellam', "
                              f"got {self.mechanism!r}")
        if self.weight_clip is not None and not (self.weight_clip > 0 and math.isfinite(self.weight_clip)):
            raise ConfigError(f"{p}.weight_clip", f"the clip bound must be > 0, got {self.weight_clip!r}")
        if self.accountant not in ("rdp", "prv"):
            raise ConfigError(f"{p}.accountant", f"must be 'rdp' or 'prv', got {self.accountant!r}")


def target_epsilon(cfg: ExampleLevelConfig | ClientLevelConfig) -> float:
    """The ε to calibrate noise for when ``noise_multiplier`` is unset (_budget requires one of them)."""
    if cfg.epsilon is None:
        raise ValueError("neither epsilon nor noise_multiplier is set")
    return cfg.epsilon


@dataclass(frozen=True)
class PrivacyConfig:
    example_level: ExampleLevelConfig | None = None
    client_level: ClientLevelConfig | None = None


@dataclass(frozen=True)
class ExampleDPSettings:
    """What a client's trainer needs (picklable: it travels to the worker process)."""

    noise_multiplier: float  # σ/C of each noisy step
    max_grad_norm: float  # C: per-record (per-group) L2 clip
    sample_rate: float  # Poisson rate q of each prompt per step
    # Std of the noise on each step's sums of per-record reward moments (in [0, 1] units), or None
    # when the weights need no reward statistic ('uniform'); rewards are clipped to [0, reward_bound].
    reward_noise: float | None = None
    reward_bound: float = 1.0

    def __post_init__(self) -> None:
        if self.reward_noise is not None and not (self.reward_noise > 0 and math.isfinite(self.reward_noise)):
            raise ValueError(f"reward_noise must be finite and > 0, got {self.reward_noise}")
        if not (self.reward_bound > 0 and math.isfinite(self.reward_bound)):
            raise ValueError(f"reward_bound must be finite and > 0, got {self.reward_bound}")
        if not (self.noise_multiplier >= 0 and math.isfinite(self.noise_multiplier)):
            raise ValueError(f"noise_multiplier must be finite and >= 0, got {self.noise_multiplier}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if not 0 < self.sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate}")

    def make_private(self, steps: LocalSteps, pool_size: int) -> LocalSteps:
        """What grpo/trainer.py's train_round calls with ``dp=``: the private steps (dpsgd.py)."""
        from .dpsgd import make_private

        return make_private(steps, self, pool_size)


def check_records(key: str, delta: float, records: int, who: str) -> None:
    """δ must be below 1/records: δ ≥ 1/n allows releasing one whole record outright."""
    if records < 1 or delta >= 1.0 / records:
        raise ConfigError(key, f"delta={delta:g} must be < 1/records = 1/{records} ({who}): "
                          "with delta >= 1/n a mechanism may publish a record in the clear")


def check_privacy(run: Any) -> None:
    """Cross-section checks (``run`` is the RunConfig; duck-typed to avoid an import cycle)."""
    priv: PrivacyConfig = run.privacy
    ex, cl = priv.example_level, priv.client_level
    if ex is not None:
        if run.grpo.scale_rewards == "batch":
            raise ConfigError("grpo.scale_rewards", "'batch' scales every group by the whole batch's "
                              "spread, so one record moves the others' gradients: use 'group' or 'none' "
                              "with privacy.example_level")
        check_records("privacy.example_level.delta", ex.delta, run.data.train_size,
                      "records = data.train_size prompts per client")
    if cl is not None:
        check_records("privacy.client_level.delta", cl.delta, len(run.clients), "records = clients")
        backend = run.secure_sum.backend
        if run.secure_sum.options.get("weights") == "server":
            raise ConfigError("privacy.client_level", "secure_sum.options.weights = 'server' sends the "
                              "gain g in the vector for the server to exponentiate: noise cannot be "
                              "calibrated through exp(g/τ); use client-side weights")
        if cl.mechanism == "skellam":
            if backend != "masked":
                raise ConfigError("privacy.client_level.mechanism", f"'skellam' is integer noise in the "
                                  f"masked backend's fixed-point domain; secure_sum.backend = {backend!r} "
                                  "cannot carry it (use 'distributed' or 'local')")
            if cl.accountant != "rdp":
                raise ConfigError("privacy.client_level.accountant", "'skellam' is accounted with its own "
                                  f"RDP bound; accountant = {cl.accountant!r} does not apply: use 'rdp'")
        if cl.mechanism == "distributed" and backend == "plaintext":
            log.warning("privacy.client_level.mechanism = 'distributed' with the plaintext backend: "
                        "the server sees each vector with only its share of the noise; the guarantee "
                        "then covers the released model, not the server's view")
