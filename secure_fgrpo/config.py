"""The run configuration: one TOML file, validated strictly (see configio)."""

from __future__ import annotations

import logging
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .configio import ConfigError, build
from .data.population import PopulationConfig
from .gain import GainConfig, Strategy, count_kind, weight_bound
from .grpo.trainer import GRPOConfig
from .model.device import check_device_name
from .model.lora import LoraSpec
from .model.tiny import TinyModelSpec
from .privacy.config import PrivacyConfig, check_privacy
from .rollout.vllm_support import refusal, vllm_missing
from .secure_sum.transcript import AuditConfig
from .tasks import SAMPLED_FAMILIES
from .tasks.base import RewardSpec

log = logging.getLogger(__name__)
ServerOpt = Literal["sgd", "fedavgm", "fedadam"]
SERVER_OPTS = ("sgd", "fedavgm", "fedadam")


@dataclass(frozen=True)
class ServerOptConfig:
    """``[server]``: how the server applies Σe_iΔ_i / Σe_i (federation/update.py)."""

    kind: ServerOpt = "sgd"
    lr: float = 1.0
    beta1: float = 0.9  # FedAdam's first moment, and FedAvgM's momentum
    beta2: float = 0.99
    tau: float = 1e-3  # FedAdam's adaptivity (Reddi et al. 2021)

    def __post_init__(self) -> None:
        if self.kind not in SERVER_OPTS:
            raise ValueError(f"server.kind must be one of {', '.join(SERVER_OPTS)}, got {self.kind!r}")
        if not self.lr > 0:
            raise ValueError(f"server.lr must be > 0, got {self.lr}")
        for key in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"server.{key} must be in [0, 1), got {getattr(self, key)}")


@dataclass(frozen=True)
class PubSwapConfig:
    """``[pubswap]`` (PubSwap, arXiv 2604.12160; federation/pubswap.py): every ``every`` rounds each
    client seals up to ``responses`` correct responses per public prompt (``prompts`` of them per
    exchange) to every other participant, each padded to ``blob_bytes``; the next round it takes
    ``steps`` off-policy GRPO steps on those prompts with its incorrect responses replaced."""

    # prompts = 16, steps = 2: the best of six settings in a 1-seed, 3-round probe on the demo
    # federation (benchmarks/pubswap_probe.py; README "PubSwap").
    enabled: bool = False
    every: int = 1  # rounds between exchanges
    prompts: int = 16  # public prompts per client per exchange
    responses: int = 2  # most correct responses a client offers per public prompt
    steps: int = 2  # off-policy GRPO steps on the public prompts per round
    blob_bytes: int = 64  # fixed padded size of one sealed response (plaintext record)

    def __post_init__(self) -> None:
        for key in ("every", "prompts", "responses", "steps"):
            value = getattr(self, key)
            if value < 1:
                raise ConfigError(f"pubswap.{key}", f"must be >= 1, got {value}")
        if self.prompts > 1024:
            raise ConfigError("pubswap.prompts", f"must be <= 1024 (the public set is 4 x prompts), got {self.prompts}")
        if not 16 <= self.blob_bytes <= 4096:
            raise ConfigError("pubswap.blob_bytes", f"must be in [16, 4096], got {self.blob_bytes}")


# Backend options that backend_options fills in from another table: the user sets them there.
DERIVED_OPTIONS = {"policy": "[security]", "client_policies": "clients.<name>.security", "tau": "gain.tau",
                   "gain_clip": "gain.clip"}


@dataclass(frozen=True)
class ModelConfig:
    path: str = "embedded"  # "embedded", a named source (model/sources.py), a local directory, or a hub id
    embedded: TinyModelSpec = field(default_factory=TinyModelSpec)  # used when path = "embedded"
    lora: LoraSpec = field(default_factory=LoraSpec)
    rollout: Literal["transformers", "vllm"] = "transformers"
    device: str = "cpu"  # "cpu", "auto" (a GPU when there is one), "cuda" or "cuda:N" (model/device.py)

    def __post_init__(self) -> None:
        check_device_name(self.device)
        if self.rollout == "vllm" and (missing := vllm_missing()):  # refused here, not mid-run
            raise ConfigError("model.rollout", refusal(missing))


@dataclass(frozen=True)
class ClientConfig:
    name: str
    families: dict[str, float] = field(default_factory=dict)  # mix; empty -> from data.partition
    reward: RewardSpec = field(default_factory=RewardSpec)
    data: str = ""  # optional local JSONL/Parquet with prompt, answer, kind: the client trains on it only
    eval_data: str = ""  # optional held-out file (same columns); default: a split of `data` (data/own.py)
    security: dict[str, Any] = field(default_factory=dict)  # this institution's [security] overrides

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"clients.name {self.name!r} must be a plain folder name")
        if self.eval_data and not self.data:
            raise ValueError(f"clients.{self.name}.eval_data: names a held-out file but clients.{self.name}.data "
                             "is empty (held-out rows of generated families are drawn automatically)")


@dataclass(frozen=True)
class DataConfig:
    partition: Literal["explicit", "family", "dirichlet"] = "explicit"
    alpha: float = 0.5
    families_per_client: int = 2
    train_size: int = 400
    eval_size: int = 50
    global_eval_size: int = 200
    own_eval_fraction: float = 0.2  # share of a client data file's distinct prompts held out for evaluation

    def __post_init__(self) -> None:
        for key in ("train_size", "eval_size", "global_eval_size", "families_per_client"):
            if getattr(self, key) < 1:
                raise ValueError(f"data.{key} must be >= 1")
        if not 0 < self.own_eval_fraction < 1:
            raise ValueError(f"data.own_eval_fraction must be in (0, 1), got {self.own_eval_fraction}")


@dataclass(frozen=True)
class SecureSumConfig:
    backend: Literal["plaintext", "masked", "ckks"] = "plaintext"
    threshold: float = 0.66  # fraction of a round's participants that must survive
    options: dict[str, Any] = field(default_factory=dict)  # backend-specific, validated by it

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ValueError(f"secure_sum.threshold must be in (0, 1], got {self.threshold}")


@dataclass(frozen=True)
class FederationConfig:
    rounds: int = 6
    fraction: float = 1.0  # clients sampled per round
    # fixed: exactly round(fraction·n) clients a round; poisson: each client independently with
    # probability fraction (the sampling the client-level accountant's amplification assumes)
    sampling: Literal["fixed", "poisson"] = "fixed"
    strategy: Strategy = "fgrpo"
    delta_clip: float = 4.0  # L2 bound C on each client's adapter delta
    workers: int = 2  # parallel single-threaded client trainers
    dropout: float = 0.0  # simulated probability that a sampled client vanishes mid-round

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"federation.rounds must be >= 1, got {self.rounds}")
        if not 0 < self.fraction <= 1:
            raise ValueError(f"federation.fraction must be in (0, 1], got {self.fraction}")
        if self.sampling not in ("fixed", "poisson"):
            raise ValueError(f"federation.sampling must be 'fixed' or 'poisson', got {self.sampling!r}")
        if not self.delta_clip > 0:
            raise ValueError(f"federation.delta_clip must be > 0, got {self.delta_clip}")
        if self.workers < 1:
            raise ValueError(f"federation.workers must be >= 1, got {self.workers}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"federation.dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class EvalConfig:
    temperature: float = 1.0
    max_new_tokens: int = 8


@dataclass(frozen=True)
class RunConfig:
    seed: int = 0
    clients: tuple[ClientConfig, ...] = ()
    federation: FederationConfig = field(default_factory=FederationConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    gain: GainConfig = field(default_factory=GainConfig)
    server: ServerOptConfig = field(default_factory=ServerOptConfig)
    secure_sum: SecureSumConfig = field(default_factory=SecureSumConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)  # privacy/config.py
    audit: AuditConfig = field(default_factory=AuditConfig)  # secure_sum/transcript.py
    security: dict[str, Any] = field(default_factory=dict)  # masked: secure_sum/masked/policy.py
    population: PopulationConfig | None = None  # many generated clients instead of [[clients]]
    pubswap: PubSwapConfig = field(default_factory=PubSwapConfig)  # federation/pubswap.py

    def __post_init__(self) -> None:
        if self.population is not None:
            self._expand_population(self.population)
        if len(self.clients) < 2:
            raise ValueError("clients: a federation needs at least 2 clients")
        names = [c.name for c in self.clients]
        if len(set(names)) != len(names):
            raise ValueError(f"clients: duplicate names in {names}")
        if self.data.partition == "explicit" and self.population is None:  # a population draws its own mixes
            for c in self.clients:
                if not c.families and not c.data:
                    raise ValueError(f"clients.{c.name}.families: empty, and data.partition is 'explicit'")
                for fam in c.families:
                    if fam not in SAMPLED_FAMILIES:
                        raise ValueError(f"clients.{c.name}.families: unknown family {fam!r}")
        if self.secure_sum.options.get("weights") == "server" and self.federation.strategy != "fgrpo":
            raise ValueError("secure_sum.options.weights = 'server' evaluates FGRPO's exp(g/τ): "
                             "it needs federation.strategy = 'fgrpo'")
        if self.grpo.loss.max_completion_length != self.grpo.sampling.max_new_tokens:
            raise ValueError("grpo.loss.max_completion_length must equal grpo.sampling.max_new_tokens")
        if self.privacy.example_level is not None and self.gain.count == "informative_groups":
            raise ValueError("gain.count = 'informative_groups' depends on the data; under "
                             "privacy.example_level n_i is the public expected batch: use 'auto' or 'dataset'")
        for key, home in DERIVED_OPTIONS.items():
            if key in self.secure_sum.options:  # accepted before, then silently ignored or conflicting
                raise ConfigError(f"secure_sum.options.{key}", f"is set from {home} (one home per setting): "
                                  "remove it here")
        if self.privacy.example_level is not None and self.gain.source == "global":
            raise ValueError("gain.source = 'global' weighs by the accuracy on the client's held-out rows, "
                             "which example-level DP does not cover: use gain.source = 'train'")
        check_privacy(self)
        self._check_security()
        self._check_pubswap()

    def _check_pubswap(self) -> None:
        """PubSwap sends responses of each local model to the other institutions, before any
        server-side noise: refused under client-level DP, allowed under example-level DP."""
        if not self.pubswap.enabled:
            return
        if self.privacy.client_level is not None:
            raise ConfigError("pubswap.enabled", "refused under privacy.client_level: the local model is not "
                              "private before the server's noise, so its responses would leak its data to the "
                              "other institutions")
        if self.population is not None:
            raise ConfigError("pubswap.enabled", "not with [population] (the exchange seals to every named "
                              "participant of a round; list [[clients]] instead)")
        if self.privacy.example_level is not None:
            log.info("pubswap.enabled under privacy.example_level: the exchanged responses are post-processing "
                     "of the DP-trained local adapter, covered by its epsilon")

    def _expand_population(self, pop: PopulationConfig) -> None:
        """``[population]`` stands for ``size`` generated clients (data/population.py draws their
        data when sampled). A saved run config lists them too; that list must be the same."""
        generated = tuple(ClientConfig(name=n) for n in pop.names())
        if self.clients and self.clients != generated:
            raise ValueError("clients: list [[clients]] or set [population], not both")
        object.__setattr__(self, "clients", generated)

    def _check_security(self) -> None:
        """Validate the masked backend's policies now, naming the table (masked/policy.py)."""
        from .secure_sum.masked.policy import SecurityPolicy

        if self.secure_sum.backend != "masked":
            if self.security or any(c.security for c in self.clients):
                raise ValueError("security: the policy applies to secure_sum.backend = 'masked' only")
            return
        base = SecurityPolicy.from_dict(self.security)
        for c in self.clients:
            try:
                SecurityPolicy.from_dict(c.security, base)
            except ValueError as err:
                raise ValueError(f"clients.{c.name}.{err}") from None


    @property
    def max_count(self) -> int:
        """The largest count n_i any client may weigh by (public, gain.py). Under example-level
        DP n_i is the public expected batch steps x q x N (grpo/trainer.py), bounded here with the
        generated pool size N = data.train_size; a data-set count is capped at gain.max_count
        (default data.train_size); informative groups are at most steps x prompts_per_step."""
        per_step = self.grpo.prompts_per_step
        ex = self.privacy.example_level
        if ex is not None:
            per_step = max(per_step, self.grpo.oversample if ex.sample_rate is None
                           else math.ceil(ex.sample_rate * self.data.train_size))
        elif count_kind(self.federation.strategy, self.gain) == "dataset":
            return self.gain.max_count or self.data.train_size
        return self.grpo.steps * per_step

    @property
    def weight_bound(self) -> float:
        """e_max: the largest weight any client may send this round (public; fixed point and
        DP sensitivity are sized from it): the weight at the largest count and the gain clip G.
        A client's count is capped at max_count before its weight is computed; only an
        example-level DP client whose own file outgrows data.train_size has e clipped instead."""
        return weight_bound(self.federation.strategy, self.max_count, self.gain)

    @property
    def backend_options(self) -> dict:
        """The secure-sum backend's options plus the public round settings a server-side weight
        needs (τ and G), so the federation, the key tool and the audit build the same backend."""
        options = dict(self.secure_sum.options)
        if self.secure_sum.backend == "masked":  # each institution's policy (masked/policy.py)
            options.setdefault("policy", dict(self.security))
            own = {c.name: c.security for c in self.clients if c.security}
            if own:
                options.setdefault("client_policies", own)
        if options.get("weights") == "server":
            options.setdefault("tau", self.gain.tau)
            options.setdefault("gain_clip", self.gain.clip)
        return options


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a TOML run config; errors name the offending key."""
    try:
        raw = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("<file>", f"{path}: not valid TOML ({err})") from None
    except UnicodeDecodeError:
        raise ConfigError("<file>", f"{path}: not a text (TOML) file") from None
    _resolve_data_paths(raw, Path(path).parent)
    return config_from_dict(raw)


def _resolve_data_paths(raw: dict[str, Any], base: Path) -> None:
    """A relative ``clients.data`` or ``clients.eval_data`` is read relative to the config file's folder, so a copied
    example folder keeps working from anywhere; a missing file is refused naming the key."""
    clients = raw.get("clients")
    for i, c in enumerate(clients if isinstance(clients, list) else []):
        for key in ("data", "eval_data"):
            data = c.get(key) if isinstance(c, dict) else None
            if not isinstance(data, str) or not data:
                continue
            path = Path(data).expanduser()
            path = path if path.is_absolute() else base / path
            if not path.is_file():
                raise ConfigError(f"clients.{c.get('name', i)}.{key}", f"{path}: no such file")
            c[key] = str(path)


def config_from_dict(raw: dict[str, Any]) -> RunConfig:
    return build(RunConfig, raw)
