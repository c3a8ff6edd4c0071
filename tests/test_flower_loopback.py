"""A real deployment on loopback: SuperLink + three SuperNodes as separate processes, TLS and
SuperNode authentication on, the app started with ``flwr run``. One SuperNode is killed by its
PID in the middle of round 2 and started again: round 2 completes from the survivors (the
restarted node lost its round secrets, so it is a dropout), and in round 3 it takes part again.
A SuperNode whose key was never registered is refused. Every process is stopped by PID."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from flower_support import (  # skips without flwr
    bound,
    dropouts,
    exact_sum,
    in_process_total,
    jsonl,
    round_spec,
    wait_for,
)

from secure_fgrpo.deploy.loopback import LoopbackFederation
from secure_fgrpo.deploy.node_keys import make_node_key

NAMES = ["hosp-a", "hosp-b", "hosp-c"]
DIM, THRESHOLD = 257, 2
VICTIM = "hosp-c"

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    fed = LoopbackFederation(tmp_path_factory.mktemp("flower"), NAMES)
    try:
        fed.prepare()
        fed.start_superlink()
        for name in NAMES:
            fed.register(name)
        yield fed
    finally:
        fed.stop()
        for proc in fed.procs.procs:
            assert not proc.alive(), f"{proc.name} (pid {proc.pid}) survived stop()"


def test_unregistered_supernode_is_refused(fed: LoopbackFederation) -> None:
    stranger = make_node_key(fed.root / "stranger-keys", "hosp-x")
    proc = fed.start_supernode("hosp-a", key=stranger.private, tag="-unregistered")
    wait_for("the SuperNode with an unregistered key to exit", lambda: not proc.alive(), timeout=120)
    # Flower's exit 305 / code 2004: TLS worked, activation of an unknown key did not. The
    # registered keys of the next test connect through the same SuperLink and certificate.
    log_text = proc.log_text()
    assert proc.popen.returncode != 0 and "Exit Code: 305" in log_text, log_text[-1500:]
    assert "Failed to activate SuperNode" in log_text
    assert "No SuperNode found with the given public key" in fed.superlink.log_text()
    fed.nodes.pop("hosp-a")


def test_rounds_survive_a_killed_and_restarted_supernode(fed: LoopbackFederation,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for name in NAMES:
        fed.start_supernode(name)
    out = fed.root / "out"
    fed.run_app({"rounds": 3, "dim": DIM, "threshold": THRESHOLD, "out-dir": str(out),
                 "stage-timeout": 45.0, "min-nodes": 3, "connect-timeout": 120.0,
                 "round-wait": 150.0})
    # Kill the victim once round 2's share stage is under way: it is gone before it can send its
    # masked input, so its pairwise masks must be removed from the survivors' shares.
    wait_for("round 2's share stage", lambda: any(
        e["round"] == 2 and e["stage"] == "share" and e["event"] == "sent" for e in jsonl(out / "progress.jsonl")),
        timeout=400)
    victim = fed.nodes[VICTIM]
    victim.kill_now()
    assert not victim.alive()
    fed.restart_supernode(VICTIM)
    rows = wait_for("three recorded rounds", lambda: (r := jsonl(out / "rounds.jsonl")) and len(r) >= 3 and r,
                    timeout=400, every=0.5)
    seeds = {n: NAMES.index(n) for n in NAMES}
    states = {n: fed.state_dir(n) for n in NAMES}
    r1, r2, r3 = rows[:3]
    assert [r["aborted"] for r in rows[:3]] == [False, False, False], rows
    assert r1["contributors"] == NAMES
    assert r2["participants"] == NAMES and VICTIM not in r2["contributors"]
    assert r2["contributors"] == ["hosp-a", "hosp-b"]
    assert r3["contributors"] == NAMES, "the restarted SuperNode takes part again"
    assert set().union(*dropouts(r2).values()) == {VICTIM} and not dropouts(r1) and not dropouts(r3)
    for row in (r1, r2, r3):
        spec = round_spec(row, DIM, THRESHOLD)
        dropped = dropouts(row)
        total = np.asarray(row["total"])
        exact = exact_sum(spec, row["contributors"], seeds)
        tol = bound(spec, len(row["contributors"]))
        assert np.max(np.abs(total - exact)) <= tol
        names, local = in_process_total(spec, fed.roster, states, seeds, dropped)
        assert list(names) == row["contributors"]
        assert np.max(np.abs(total - local)) <= 2 * tol
