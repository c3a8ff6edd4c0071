"""A real deployment on loopback: SuperLink + three SuperNodes as separate processes, TLS and
SuperNode authentication on, the app started with ``flwr run``, training the embedded demo
federation (three institutions, small sizes). Each SuperNode is a party: it holds its own copy
of the federation config, trains on the global vector stage 0 carries, and sends only masked
words. One federation serves every process check but the README's (tests/test_readme_deploy.py
checks the global adapter against an in-process run):

- round 1: one SuperNode is killed by its PID once the share stage is under way; the round
  completes from the two survivors (the killed node's masks are removed) and it is started again;
- round 2: all three start it; two are stopped by their PIDs at the advertise stage, leaving one
  against a threshold of two: the round aborts cleanly (one line in the ServerApp's log, one row,
  nothing revealed, nothing applied);
- round 3 is a second ``flwr run`` on the same out-dir (as after a SuperLink restart): the
  ServerApp resumes from its checkpoint and all three institutions, back, contribute;
- a SuperNode whose key was never registered is refused;
- no file of the whole deployment holds another party's private key.

Every process is stopped by PID, also on failure."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import small_run
from flower_support import dropouts, jsonl, wait_for  # skips without flwr
from keys_support import assert_custody, deployment_owners, files_under, pem_secret
from toml_out import dumps

from secure_fgrpo.deploy.loopback import LoopbackFederation
from secure_fgrpo.deploy.node_keys import make_node_key

NAMES = ["a", "b", "c"]  # small_run's institutions
VICTIM = "c"
GONE = ["b", "c"]
FED = {"secure_sum.backend": "masked", "federation.rounds": 3, "federation.workers": 2}

pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("flower")
    config = root / "pub" / "federation.toml"  # public: every institution holds the same file
    config.parent.mkdir(parents=True)
    config.write_text(dumps(small_run(**FED)))
    fed = LoopbackFederation(root, NAMES, node_config={"config": str(config)})
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
    stranger = make_node_key(fed.root / "stranger" / "node-key", "x")
    proc = fed.start_supernode("a", key=stranger.private, tag="-unregistered")
    wait_for("the SuperNode with an unregistered key to exit", lambda: not proc.alive(), timeout=120)
    # Flower's exit 305 / code 2004: TLS worked, activation of an unknown key did not. The
    # registered keys of the next test connect through the same SuperLink and certificate.
    log_text = proc.log_text()
    assert proc.popen.returncode != 0 and "Exit Code: 305" in log_text, log_text[-1500:]
    assert "Failed to activate SuperNode" in log_text
    assert fed.superlink is not None
    assert "No SuperNode found with the given public key" in fed.superlink.log_text()
    fed.nodes.pop("a")


def _stage_sent(out: Path, round_: int, stage: str) -> bool:
    return any(e["round"] == round_ and e["stage"] == stage and e["event"] == "sent"
               for e in jsonl(out / "progress.jsonl"))


def _rows(out: Path, n: int, timeout: float) -> list[dict]:
    return wait_for(f"{n} recorded round(s)", lambda: (r := jsonl(out / "rounds.jsonl")) and len(r) >= n and r,
                    timeout=timeout, every=0.5)


def test_a_killed_supernode_an_abort_below_threshold_and_a_resumed_run(fed: LoopbackFederation) -> None:
    for name in NAMES:
        fed.start_supernode(name)
    out = fed.coordinator / "out"
    run_cfg = {"config": str(fed.node_config["config"]), "out-dir": str(out), "stage-timeout": 45.0,
               "train-timeout": 400.0, "min-nodes": 3, "connect-timeout": 120.0, "round-wait": 150.0}
    run_id = fed.run_app({**run_cfg, "rounds": 2})
    # Round 1: kill the victim once the share stage is under way: it trained and advertised, but
    # it is gone before it sends its masked input, so its masks must be removed from the others'.
    wait_for("round 1's share stage", lambda: _stage_sent(out, 1, "share"), timeout=500)
    victim = fed.nodes[VICTIM]
    victim.kill_now()
    assert not victim.alive()
    fed.restart_supernode(VICTIM)
    # Round 2: the victim is back and trains; then two of three leave (SIGTERM to the group each
    # PID leads) before they advertise: one institution against a threshold of two.
    wait_for("round 2's advertise stage", lambda: _stage_sent(out, 2, "advertise"), timeout=500)
    for name in GONE:
        fed.nodes[name].stop()
        assert not fed.nodes[name].alive()
    r1, r2 = _rows(out, 2, timeout=300)
    assert not r1["aborted"] and r1["participants"] == NAMES and r1["contributors"] == ["a", "b"], r1
    assert set().union(*dropouts(r1).values()) == {VICTIM}
    assert r2["aborted"] and r2["participants"] == NAMES, r2
    assert not r2["stages"]["setup"]["missed"], "the restarted SuperNode trained in round 2"
    assert set().union(*dropouts(r2).values()) == set(GONE)
    assert r2["contributors"] == [] and r2["total"] is None  # nothing revealed, nothing applied
    assert r2["global_digest"] == r1["global_digest"], "an aborted round changes nothing"
    # One line in the coordinator's log (the ServerApp's, kept by the SuperLink) names the abort.
    coordinator_log = wait_for("the ServerApp's log", lambda: (t := fed.run_log(run_id)) and "global adapter" in t
                               and t, timeout=120, every=1.0)
    assert coordinator_log.count("round 2 aborted:") == 1, coordinator_log[-3000:]
    assert "round 1 aborted" not in coordinator_log
    # Round 3: a second `flwr run` on the same out-dir resumes after round 2, with all three back.
    for name in GONE:
        fed.restart_supernode(name)
    fed.run_app({**run_cfg, "rounds": 3})
    rows = _rows(out, 3, timeout=500)
    r3 = rows[2]
    assert [r["round"] for r in rows] == [1, 2, 3], "the second run resumed at round 3"
    assert not r3["aborted"] and r3["contributors"] == NAMES and not dropouts(r3), r3
    for row in (r1, r3):  # what the benchmark reads: each node's own training and secure-sum seconds
        for name in row["contributors"]:
            assert row["nodes"][name]["train_seconds"] > 0 and row["nodes"][name]["sum_seconds"] > 0
    wait_for("the exported global adapter", lambda: (out / "server/global_adapter/adapter_config.json").exists(),
             timeout=120)


def test_no_file_of_the_deployment_holds_another_partys_private_key(fed: LoopbackFederation) -> None:
    """After the runs: certificates, SuperNode keys, identities and party state, each party's
    FLWR_HOME (the SuperLink database, installed app bundles), the coordinator's out-dir, every
    process log."""
    owners = deployment_owners(fed)
    stranger = fed.root / "stranger"
    owners[stranger] = {"x/node-key": pem_secret(stranger / "node-key" / "x")}
    assert (fed.node_dir(NAMES[0]) / "flwr-home").exists() and (fed.home / "superlink.db").exists()
    assert (fed.state_dir(NAMES[0]) / "party").is_dir() and (fed.coordinator / "out" / "rounds.jsonl").exists()
    assert_custody(owners, [fed.pub, fed.logs], files_under(fed.root))
