"""The ServerApp's server side without Flower processes: it starts from the same global vector
as the in-process federation, refuses a backend it cannot run and a roster that misses an
institution (one line naming the key), resumes from its out-dir, and writes the global adapter
in peft's format. The Flower transport itself is tests/test_flower_loopback.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("flwr", reason="needs the 'flower' extra")

from conftest import small_run
from toml_out import dumps

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.flower.config import ServerConfig
from secure_fgrpo.flower.coordinator import Coordinator
from secure_fgrpo.secure_sum.masked.keys import (
    load_or_create_identity,
    public_bytes,
    write_roster,
)


def _server(tmp: Path, names: list[str], **over: object) -> ServerConfig:
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "federation.toml"
    config.write_text(dumps(small_run(**{"secure_sum.backend": "masked", **over})))
    roster = tmp / "roster.json"
    write_roster(roster, {n: public_bytes(load_or_create_identity(tmp / "ids" / n)) for n in names})
    return ServerConfig.from_run_config({"config": str(config), "roster": str(roster), "out-dir": str(tmp / "out")})


def test_server_side_starts_where_the_in_process_run_starts_and_exports(tmp_path: Path) -> None:
    cfg = _server(tmp_path, ["a", "b", "c"])
    coord = Coordinator(None, cfg)  # type: ignore[arg-type]  # no Grid: nothing is sent here
    local = Federation(config_from_dict(small_run(**{"secure_sum.backend": "masked"})), tmp_path / "local")
    assert np.array_equal(coord.global_model.state.vector, local.global_model.state.vector)
    assert coord.next_round == 1
    setup = coord.party.open_round(1, ["a", "b", "c"])
    assert setup.config_digest == local.coordinator.config_digest and setup.spec.dim == local.layout.size + 1
    out = coord.export_adapter()
    assert (out / "adapter_config.json").exists() and (out / "adapter_model.safetensors").exists()
    coord.global_model.save(1)
    coord.server.mark_completed(1)
    assert Coordinator(None, cfg).next_round == 2  # type: ignore[arg-type]  # a new flwr run resumes


def test_server_side_refuses_what_it_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"roster.*no key for c"):
        Coordinator(None, _server(tmp_path / "r", ["a", "b"]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"secure_sum\.backend: 'plaintext' does not run over Flower"):
        Coordinator(None, _server(tmp_path / "p", ["a", "b", "c"], **{"secure_sum.backend": "plaintext"}))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'config'"):
        ServerConfig.from_run_config({"roster": "r.json", "out-dir": "o"})
