"""Below the threshold over Flower: two of three SuperNodes are stopped by their PIDs just after
round 1's stage 0 went out, so only one institution is left against a threshold of two. The
round aborts cleanly (one line in the coordinator's log and one row in its out-dir, no sum, nothing
applied); the two come back and round 2 runs with all three, its sum exact. Afterwards no file of
the whole deployment holds another party's private key. Every process is stopped by PID, also on
failure."""

from __future__ import annotations

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
from keys_support import assert_custody, deployment_owners, files_under

from secure_fgrpo.deploy.loopback import LoopbackFederation

NAMES = ["hosp-a", "hosp-b", "hosp-c"]
GONE = ["hosp-b", "hosp-c"]
DIM, THRESHOLD = 65, 2

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory):
    fed = LoopbackFederation(tmp_path_factory.mktemp("abort"), NAMES)
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


def test_round_below_threshold_aborts_and_the_next_round_runs(fed: LoopbackFederation) -> None:
    for name in NAMES:
        fed.start_supernode(name)
    out = fed.coordinator / "out"
    run_id = fed.run_app({"rounds": 2, "dim": DIM, "threshold": THRESHOLD, "out-dir": str(out), "stage-timeout": 30.0,
                 "min-nodes": 3, "connect-timeout": 120.0, "round-wait": 240.0})
    wait_for("round 1's stage 0", lambda: any(e["round"] == 1 and e["stage"] == "setup" and e["event"] == "sent"
                                             for e in jsonl(out / "progress.jsonl")), timeout=300)
    for name in GONE:  # SIGTERM to the group its PID leads: the SuperNode leaves the federation
        fed.nodes[name].stop()
        assert not fed.nodes[name].alive()
    r1 = wait_for("round 1's row", lambda: jsonl(out / "rounds.jsonl"), timeout=240, every=0.5)[0]
    assert r1["aborted"] and r1["participants"] == NAMES, r1
    assert "threshold" in r1["reason"] or "only 1 client" in r1["reason"], r1["reason"]
    assert r1["contributors"] == [] and "total" not in r1  # nothing revealed, nothing to apply
    assert len(jsonl(out / "rounds.jsonl")) == 1, "round 2 must wait for the institutions to come back"
    for name in GONE:
        fed.start_supernode(name, tag="-back")
    rows = wait_for("round 2's row", lambda: (r := jsonl(out / "rounds.jsonl")) and len(r) >= 2 and r,
                    timeout=400, every=0.5)
    r2 = rows[1]
    assert not r2["aborted"] and r2["contributors"] == NAMES, r2
    spec = round_spec(r2, DIM, THRESHOLD)
    seeds = {n: NAMES.index(n) for n in NAMES}
    total = np.asarray(r2["total"])
    assert np.max(np.abs(total - exact_sum(spec, NAMES, seeds))) <= bound(spec, 3)
    _, local = in_process_total(spec, fed.roster, {n: fed.state_dir(n) for n in NAMES}, seeds, dropouts(r2))
    assert np.max(np.abs(total - local)) <= 2 * bound(spec, 3)
    # One line in the coordinator's log (the ServerApp's, kept by the SuperLink) names the abort.
    coordinator_log = wait_for("the ServerApp's log", lambda: (t := fed.run_log(run_id)) and "round 2:" in t and t,
                               timeout=60, every=1.0)
    assert coordinator_log.count("round 1 aborted:") == 1, coordinator_log[-3000:]
    assert "round 2 aborted" not in coordinator_log


def test_no_file_of_the_deployment_holds_another_partys_private_key(fed: LoopbackFederation) -> None:
    """After the run: certificates, SuperNode keys, identities, each party's FLWR_HOME (the
    SuperLink database, installed app bundles), the coordinator's out-dir, every process log."""
    owners = deployment_owners(fed)
    assert (fed.node_dir("hosp-a") / "flwr-home").exists() and (fed.home / "superlink.db").exists()
    assert_custody(owners, [fed.pub, fed.logs], files_under(fed.root))
