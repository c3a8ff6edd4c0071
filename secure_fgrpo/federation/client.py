"""A federation client: everything an institution keeps to itself.

Its gain history, weights, rewards and metrics live only in ``RUN/clients/<name>/``; what
leaves is one vector ``[e_i·Δ_i, e_i]`` handed to the secure-sum backend."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import ClientConfig, RunConfig
from ..data.partition import ClientData
from ..errors import CheckpointError
from ..gain import GainState, count_kind, round_gain, weight
from ..privacy.client_dp import ClientNoise, SkellamNoise
from ..privacy.plan import ExampleLevelPlan
from .local import TrainOutcome
from .store import JsonlLog, latest_upto, prune, read_json, write_json_atomic

log = logging.getLogger(__name__)


def clip_l2(vector: np.ndarray, bound: float) -> tuple[np.ndarray, float]:
    """Scale ``vector`` into the L2 ball of radius ``bound``; returns it and its original norm."""
    norm = float(np.linalg.norm(vector))
    if norm > bound:
        vector = vector * (bound / norm)
    return vector, norm


@dataclass
class PreparedInput:
    vector: np.ndarray  # [e·Δ_clipped, e], float64
    weight: float
    gain: float


class Client:
    def __init__(self, cfg: ClientConfig, data: ClientData, root: Path, run: RunConfig) -> None:
        self.cfg, self.data, self.root, self.run = cfg, data, root, run
        self.name = cfg.name
        self.state_dir = root / "state"
        self.metrics = JsonlLog(root / "metrics.jsonl")
        self.gain_state = GainState()
        self.example_dp = ExampleLevelPlan.build(run, len(data.train), cfg.name)  # None: no DP-SGD
        self.dataset_count = min(len(data.train), run.max_count)
        if self._counts_dataset() and len(data.train) > run.max_count:
            log.warning("client %s: its %d training records count as gain.max_count = %d in its weight "
                        "(a public cap: the weight bound e_max is sized from it)",
                        cfg.name, len(data.train), run.max_count)

    def resume(self, last_round: int) -> None:
        """Load own state as of the server's last completed round; forget later rounds."""
        found = latest_upto(self.state_dir, ".json", last_round)
        self.gain_state = _gain_state(found[1]) if found else GainState()
        self.metrics.truncate_after(last_round)

    def _counts_dataset(self) -> bool:
        return self.example_dp is None and count_kind(self.run.federation.strategy, self.run.gain) == "dataset"

    def count(self, out: TrainOutcome) -> int:
        """n_i (gain.py): the capped data set size, or the groups trained on this round (under
        example-level DP the public expected batch, which the trainer reports there)."""
        return self.dataset_count if self._counts_dataset() else out.result.groups

    def can_train(self) -> bool:
        """False when one more round of DP-SGD would exceed this client's example-level budget."""
        return self.example_dp is None or self.example_dp.budget.affordable(len(self.metrics.rows()) + 1)

    def prepare_input(self, round_: int, out: TrainOutcome, weights_on_server: bool = False,
                      noise: ClientNoise | SkellamNoise | None = None) -> PreparedInput:
        """FGRPO: gain against own history -> weight e_i; clip Δ; build [e·Δ, e] — or, when the
        server evaluates exp(g/τ) under encryption, [n^α·Δ, n^α, g]. With client-level DP,
        ``noise`` clips [e·Δ, e] to its sensitivity and adds this client's noise (privacy/;
        Skellam noise is added later, in the masked backend's words)."""
        res = out.result
        strategy = self.run.federation.strategy
        gain, self.gain_state = round_gain(strategy, self.gain_state, res.mean_reward, res.reward_std,
                                           out.eval_accuracy, self.run.gain)
        n = self.count(out)
        e = min(weight(strategy, n, gain, self.run.gain), self.run.weight_bound)
        delta, norm = clip_l2(out.delta.astype(np.float64), self.run.federation.delta_clip)
        if weights_on_server:
            base = float(n) ** self.run.gain.alpha
            vector = np.concatenate([base * delta, [base, gain]])
        else:
            vector = np.concatenate([e * delta, [e]])
            if noise is not None:
                vector = noise.privatize(vector)
        write_json_atomic(self.state_dir / f"round-{round_}.json",
                          {"round": round_, "gain": asdict(self.gain_state)}, private=True)
        prune(self.state_dir, ".json")
        privacy = self.example_dp.row(len(self.metrics.rows()) + 1) if self.example_dp else {}
        self.metrics.append({**privacy,
            "round": round_, "eval_accuracy_of_global": out.eval_accuracy, "mean_reward": res.mean_reward,
            "reward_std": res.reward_std, "groups": res.groups, "count": n, "gain": gain, "weight": e,
            "delta_norm": norm, "clipped": norm > self.run.federation.delta_clip, "seconds": out.seconds,
            "zero_std_frac": float(np.mean([s["zero_std_frac"] for s in res.steps])),
            **(out.pubswap.metrics if out.pubswap is not None else {}),
        })
        return PreparedInput(vector=vector, weight=e, gain=gain)


def _gain_state(path: Path) -> GainState:
    try:
        return GainState(**read_json(path)["gain"])
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: damaged client state (no valid 'gain': {err}); restore it, or "
                              "start the run over with --fresh") from None
