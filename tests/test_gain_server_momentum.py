"""Server momentum (FedAvgM) on the aggregated update, by hand, and its state surviving the
server checkpoint (a resumed run must continue the same momentum, not restart it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from secure_fgrpo.federation.global_model import GlobalModel
from secure_fgrpo.federation.update import ServerOptConfig, ServerOptState, apply_update


def test_fedavgm_two_steps_by_hand() -> None:
    # β = 0.5, lr = 2: step 1, u = (1, -1): m = u, x = 2u = (2, -2)
    # step 2, u = (0, 3): m = 0.5·(1, -1) + (0, 3) = (0.5, 2.5); x = (2, -2) + 2m = (3, 3)
    cfg = ServerOptConfig(kind="fedavgm", lr=2.0, beta1=0.5)
    x, st = apply_update(np.zeros(2, np.float32), np.array([1.0, -1.0], np.float32), cfg, ServerOptState())
    assert st.m is not None and st.v is None
    assert np.allclose(x, [2.0, -2.0]) and np.allclose(st.m, [1.0, -1.0])
    x, st = apply_update(x, np.array([0.0, 3.0], np.float32), cfg, st)
    assert st.m is not None
    assert np.allclose(x, [3.0, 3.0]) and np.allclose(st.m, [0.5, 2.5])


def test_fedavgm_momentum_survives_the_checkpoint(tmp_path: Path) -> None:
    cfg = ServerOptConfig(kind="fedavgm", lr=1.0, beta1=0.5)
    total = np.array([2.0, 4.0, 2.0])  # Σe·Δ = (2, 4), Σe = 2: update (1, 2)
    gm = GlobalModel([tmp_path], cfg, np.zeros(2, np.float32), upto=0)
    gm.apply(total)
    gm.save(1)
    resumed = GlobalModel([tmp_path], cfg, np.zeros(2, np.float32), upto=1)
    assert resumed.state.opt.m is not None and np.allclose(resumed.state.opt.m, [1.0, 2.0])
    assert resumed.state.opt.v is None
    resumed.apply(total)  # m = 0.5·(1, 2) + (1, 2) = (1.5, 3); x = (1, 2) + m
    assert np.allclose(resumed.state.vector, [2.5, 5.0])


@pytest.mark.parametrize("bad", [{"kind": "adagrad"}, {"beta1": 1.0}, {"lr": 0.0}])
def test_server_optimizer_refuses_bad_values_naming_the_key(bad: dict) -> None:
    with pytest.raises(ValueError, match=f"server\\.{next(iter(bad))}"):
        ServerOptConfig(**bad)
