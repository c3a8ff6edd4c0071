"""A hospital's own data on its own node: node-config ``data`` names the institution's JSONL,
which replaces what the shared federation config says for it (the shared config names no paths:
a path there means nothing on another machine, and loading refuses a missing one). The node
builds only its own data, with its own held-out split. A bad file is refused in one line naming
it. No Flower processes: the party is built as the ClientApp builds it (federation/node.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import small_run
from toml_out import dumps

from secure_fgrpo.federation.node import node_party

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "data" / "st-mary.jsonl"
DIM = 10


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "federation.toml"
    path.write_text(dumps(small_run()))
    return path


def test_node_trains_on_its_own_file_with_its_own_held_out_split(tmp_path: Path) -> None:
    config = _config(tmp_path)
    party = node_party(config, "a", tmp_path / "state-a", {}, DIM, EXAMPLE)
    rows = [json.loads(line) for line in EXAMPLE.read_text().splitlines() if line.strip()]
    prompts = {r["prompt"] for r in rows}
    train, held = {p.prompt for p in party.data.train}, {p.prompt for p in party.data.eval}
    assert train and held and train | held == prompts and not train & held
    # Teeth: without node-config data, "a" trains on what the shared config generates (vitals).
    generated = {p.prompt for p in node_party(config, "a", tmp_path / "state-g", {}, DIM).data.train}
    assert generated and not generated & prompts


@pytest.mark.parametrize("content, expect", [
    (None, "no such file"),
    ('{"prompt": "12 kg to g=", "answer": "12000", "kind": "unit"}\n{"prompt": "oops"}\n', "row 1"),
])
def test_node_refuses_a_bad_data_file_in_one_line_naming_it(tmp_path: Path, content: str | None, expect: str) -> None:
    bad = tmp_path / "own.jsonl"
    if content is not None:
        bad.write_text(content)
    with pytest.raises(ValueError) as err:
        node_party(_config(tmp_path), "a", tmp_path / "state", {}, DIM, bad)
    message = str(err.value)
    assert "\n" not in message and str(bad) in message and "node-config 'data'" in message, message
    assert expect in message, message


def test_a_bad_own_file_stays_in_the_nodes_log_not_in_what_the_server_reads(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A withdrawal's reason goes to the server (flower/client_app.py): an error about the
    institution's own file may quote a row's value, so the server gets one generic line and the
    detail stays in the node's own log."""
    pytest.importorskip("flwr", reason="the ClientApp needs flwr (the flower extra)")
    from secure_fgrpo.flower.client_app import load_party
    from secure_fgrpo.flower.policy import NodePolicy, PolicyError

    bad = tmp_path / "own.jsonl"
    secret = "PATIENT-7731-XYZ"
    bad.write_text('{"prompt": "12 kg to g=", "answer": "12000", "kind": "unit"}\n'
                   f'{{"prompt": "dose?", "answer": "{secret}", "kind": "unit"}}\n')
    policy = NodePolicy(name="a", state_dir=tmp_path / "state", roster=tmp_path / "roster.json",
                        config=_config(tmp_path), data=bad)
    with pytest.raises(ValueError) as direct:  # what the node itself reads: the row's value, named
        node_party(policy.config, "a", tmp_path / "state-d", {}, DIM, bad)
    assert secret in str(direct.value)  # teeth: the detail does quote the row
    with caplog.at_level("WARNING"), pytest.raises(PolicyError) as err:
        load_party(policy, DIM)
    assert secret not in str(err.value) and str(bad) not in str(err.value), err.value
    assert secret in caplog.text and str(bad) in caplog.text
