"""The README's deployment section, followed as a new user would: each fenced block tagged
``<!-- readme-deploy: ROLE -->`` runs as written in a shell of its own (one per terminal), in an
empty folder, with the venv's commands on the PATH. Institution blocks run once per hospital with
their first line (``H=hosp-a ...``) changed as the README says; the SuperLink and SuperNode
blocks (tagged ``&``) keep running in the background. Only the ports are changed to free ones.
Then: two masked rounds of the README's federation (examples/deploy.toml: the embedded demo,
three institutions, trained over Flower) ran with every institution, and the global adapter equals
an in-process run of the same config and seed; the fingerprints the institutions wrote down are
the roster's, no file holds another party's private key, and a restarted SuperLink still knows
the registered SuperNodes. This is the suite's one check of Flower against the in-process run
(tests/test_flower_loopback.py covers a killed SuperNode, an abort and a resumed run). Every
process is stopped by its PID, also on failure."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from flower_support import jsonl, wait_for  # skips without flwr
from keys_support import assert_custody, files_under, party_secrets, pem_secret

from secure_fgrpo.config import load_config
from secure_fgrpo.deploy.loopback import APP_DIR, _wait_port
from secure_fgrpo.deploy.procs import Proc, ProcGroup, free_port
from secure_fgrpo.federation.runner import Federation

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
EXAMPLE = REPO / "examples" / "deploy.toml"
BLOCK = re.compile(r"<!-- readme-deploy: ([a-z]+)( &)? -->\n```sh\n(.*?)```", re.DOTALL)
INSTITUTIONS = ["hosp-a", "hosp-b", "hosp-c"]
ROLES = ["coordinator", "institution", "coordinator", "superlink", "coordinator", "institution", "supernode",
         "coordinator"]
FINGERPRINT = re.compile(r"fingerprint of (\S+): ([0-9a-f ]{79})")


def readme_blocks() -> list[tuple[str, bool, str]]:
    text = README.read_text()
    section = text[text.index("\n## Deployment\n"):]
    section = section[:section.index("\n## ", 5)]
    return [(m[1], bool(m[2]), m[3]) for m in BLOCK.finditer(section)]


def for_institution(code: str, name: str, node_port: int) -> str:
    """The block as the README tells hosp-b and hosp-c to change it: its first line only."""
    first, rest = code.split("\n", 1)
    if first == "H=hosp-a":
        return f"H={name}\n{rest}"
    assert first == "H=hosp-a NODE_PORT=9094", f"README block changed: {first!r}"
    return f"H={name} NODE_PORT={node_port}\n{rest}"


def test_the_deployment_section_has_every_step() -> None:
    blocks = readme_blocks()
    assert [role for role, _, _ in blocks] == ROLES
    assert [role for role, background, _ in blocks if background] == ["superlink", "supernode"]


@pytest.mark.timeout(1200)
def test_the_readme_deployment_runs_as_written(tmp_path: Path) -> None:
    work, logs = tmp_path / "repo", tmp_path / "logs"
    shutil.copytree(APP_DIR, work / "secure_fgrpo" / "flower" / "app", ignore=shutil.ignore_patterns("__pycache__"))
    (work / "examples").mkdir()
    shutil.copy(EXAMPLE, work / "examples" / EXAMPLE.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLWR_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    link_port = free_port()
    procs = ProcGroup()
    printed: list[str] = []

    def shell(name: str, code: str, background: bool) -> Proc | None:
        cmd = ["bash", "-e", "-c", code]
        if background:
            return procs.start(name, cmd, env, logs, cwd=work)
        res = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300,
                             stdin=subprocess.DEVNULL, check=False)
        assert res.returncode == 0, f"{name}: {res.stdout[-1500:]} {res.stderr[-1500:]}"
        printed.append(" ".join(res.stdout.split()))
        return None

    superlink_code = ""
    try:
        for step, (role, background, code) in enumerate(readme_blocks()):
            code = code.replace("8000", str(link_port))
            if role in ("institution", "supernode"):
                for name in INSTITUTIONS:
                    shell(f"step{step}-{role}-{name}", for_institution(code, name, free_port()), background)
            else:
                proc = shell(f"step{step}-{role}", code, background)
                if role == "superlink":
                    superlink_code = code
                    assert proc is not None
                    _wait_port(link_port, 60.0, proc)
        out = work / "deploy" / "coordinator" / "out"
        rows = wait_for("two recorded rounds", lambda: (r := jsonl(out / "rounds.jsonl")) and len(r) >= 2 and r,
                        timeout=600, every=0.5)
        for row in rows:
            assert not row["aborted"] and row["contributors"] == INSTITUTIONS, row
            for name in INSTITUTIONS:  # each node trained on its own data and encoded its input
                assert row["nodes"][name]["train_seconds"] > 0 and row["nodes"][name]["sum_seconds"] > 0
        with np.load(out / "server" / "checkpoints" / "round-2.npz") as z:
            over_flower = z["vector"].copy()
        # The same config and seed in process: the same global adapter. Not bit-exact: each masked
        # client rounds its input with fresh randomness (os.urandom dither), so the sums differ by
        # at most the fixed-point quantum / Σe per coordinate, and round 2 trains from that global.
        local = Federation(load_config(work / "deploy" / "pub" / "deploy.toml"), tmp_path / "in-process")
        local.run()
        in_process = local.global_model.state.vector
        assert over_flower.shape == in_process.shape
        assert np.max(np.abs(over_flower - in_process)) <= 1e-5, np.max(np.abs(over_flower - in_process))
        # The fingerprint each institution wrote down at `keys init` is the one the roster prints.
        written = dict(FINGERPRINT.findall(" ".join(printed[1:4])))
        assert sorted(written) == INSTITUTIONS
        assert all(f"{n}: {fp}" in printed[4] for n, fp in written.items()), printed[4]
        # Custody across the whole deployment, its logs included.
        deploy = work / "deploy"
        certs = deploy / "coordinator" / "certs"
        owners = {deploy / "coordinator": {f"coordinator/{k.name}": pem_secret(k) for k in certs.glob("*.key")}}
        for n in INSTITUTIONS:
            owners[deploy / n] = {**party_secrets(n, deploy / n / "state"),
                                  f"{n}/node-key": pem_secret(deploy / n / "node-key" / n)}
        assert_custody(owners, [deploy / "pub", logs], files_under(deploy, logs))
        # A restarted SuperLink still knows the registered SuperNodes (superlink.db).
        procs.procs[[p.name for p in procs.procs].index("step3-superlink")].stop()
        _wait_port(link_port, 60.0, procs.start("superlink-restarted", ["bash", "-e", "-c", superlink_code], env, logs,
                                                cwd=work))
        listed = subprocess.run(["flwr", "supernode", "list", "coordinator", "--format", "json"], cwd=work,
                                env={**env, "FLWR_HOME": str(deploy / "coordinator" / "flwr-home")},
                                capture_output=True, text=True, timeout=120, check=False)
        assert listed.returncode == 0, listed.stdout[-1500:]
        nodes = json.loads(listed.stdout[listed.stdout.index("{"):])["nodes"]
        assert len(nodes) == len(INSTITUTIONS) and all(n["deleted-at"] == "N/A" for n in nodes), nodes
    finally:
        procs.stop_all()
        for proc in procs.procs:
            assert not proc.alive(), f"{proc.name} (pid {proc.pid}) survived stop()"
