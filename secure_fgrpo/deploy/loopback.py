"""A whole federation on one machine, over loopback, with TLS and SuperNode authentication:
the tests and the benchmark use it, and it mirrors the README's multi-terminal commands.

Every party has its own folder, as if it were its own machine, and writes only there:
``coordinator/`` (``certs/`` with the CA and SuperLink keys, ``flwr-home/``: FLWR_HOME of the
``flwr`` CLI and the SuperLink's database) and ``nodes/<name>/`` (``state/``: the institution's
identity made as ``keys init`` makes it, ``node-key/``: its SuperNode key, ``flwr-home/``: its
SuperNode's FLWR_HOME). ``pub/`` is what the parties exchange out of band: each one's exported
entry, the roster assembled from them (``keys roster``), and the SuperNode public keys.
``logs/`` holds the processes' output. Every process goes through one :class:`ProcGroup`; call
:meth:`stop` in a finally.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..secure_sum.identity import assemble_roster, create_party, write_entry
from .certs import make_certs
from .node_keys import NodeKeyPaths, make_node_key
from .procs import Proc, ProcGroup, free_port

log = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parent.parent / "flower" / "app"
CONNECTION = "coordinator"
HOST = "127.0.0.1"


def flwr_config_toml(address: str, ca_cert: Path) -> str:
    """FLWR_HOME/config.toml naming only our SuperLink (Flower's default file also names a
    'local' connection that starts a SuperLink of its own, and a hosted one)."""
    return (f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "{address}"\nroot-certificates = "{ca_cert}"\n')


def _toml_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else ("true" if value is True else "false"
                                                              if value is False else repr(value))


def node_config_arg(values: dict[str, Any]) -> str:
    """``--node-config`` / ``--run-config`` string: space-separated ``key=TOML value`` pairs."""
    return " ".join(f"{k}={_toml_value(v)}" for k, v in values.items())


@dataclass
class LoopbackFederation:
    root: Path
    names: list[str]
    bin_dir: Path = field(default_factory=lambda: Path(sys.executable).parent)
    poll: float = 0.1
    # The SuperNode's command (default: flower-supernode from bin_dir); a benchmark may wrap it.
    supernode_cmd: list[str] = field(default_factory=list)
    procs: ProcGroup = field(default_factory=ProcGroup)
    keys: dict[str, NodeKeyPaths] = field(default_factory=dict)
    nodes: dict[str, Proc] = field(default_factory=dict)
    port: int = 0
    superlink: Proc | None = None
    node_config: dict[str, Any] = field(default_factory=dict)  # extra --node-config keys (e.g. 'config')

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.coordinator = self.root / "coordinator"
        self.home = self.coordinator / "flwr-home"
        self.pub = self.root / "pub"
        self.logs = self.root / "logs"
        self.roster = self.pub / "roster.json"

    # --- set-up: files only -------------------------------------------------------------

    def prepare(self) -> None:
        """Each party's own files, in its own folder: the coordinator's certificates, each
        institution's identity (``keys init``), entry (``keys export``) and SuperNode key, then
        the roster from the exported entries (``keys roster``)."""
        self.certs = make_certs(self.coordinator / "certs", [HOST, "localhost"])
        entries = []
        for name in self.names:
            node = self.node_dir(name)
            self.keys[name] = make_node_key(node / "node-key", name)
            entry = self.pub / f"{name}.entry.json"
            write_entry(entry, create_party(self.state_dir(name), name).entry())
            entries.append(entry)
        assemble_roster(self.roster, entries)
        self.port = free_port()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "config.toml").write_text(flwr_config_toml(f"{HOST}:{self.port}", self.certs.ca_cert))

    def node_dir(self, name: str) -> Path:
        return self.root / "nodes" / name

    def state_dir(self, name: str) -> Path:
        return self.node_dir(name) / "state"

    def env(self, party: str = "") -> dict[str, str]:
        """The environment of one party's processes: its own FLWR_HOME (the coordinator's when
        ``party`` is empty)."""
        env = dict(os.environ)
        env["FLWR_HOME"] = str(self.node_dir(party) / "flwr-home" if party else self.home)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        # SuperExec's task poll (1 s by default) adds to every ClientApp start.
        env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = str(self.poll)
        return env

    def _bin(self, name: str) -> str:
        return str(self.bin_dir / name)

    # --- processes ----------------------------------------------------------------------

    def start_superlink(self, timeout: float = 60.0) -> Proc:
        c = self.certs
        cmd = [self._bin("flower-superlink"), "--ssl-ca-certfile", str(c.ca_cert), "--ssl-certfile",
               str(c.server_cert), "--ssl-keyfile", str(c.server_key), "--enable-supernode-auth",
               "--disable-runtime-dependency-installation", "--database", str(self.home / "superlink.db"),
               "--host", HOST, "--port", str(self.port)]
        self.superlink = self.procs.start("superlink", cmd, self.env(), self.logs)
        _wait_port(self.port, timeout, self.superlink)
        return self.superlink

    def start_all(self) -> None:
        """The whole federation up: files, the SuperLink, every key registered, every SuperNode."""
        self.prepare()
        self.start_superlink()
        for name in self.names:
            self.register(name)
        for name in self.names:
            self.start_supernode(name)

    def flwr(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        """Run the ``flwr`` CLI against our SuperLink; it exits by itself (bounded by timeout)."""
        return subprocess.run([self._bin("flwr"), *args], env=self.env(), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def register(self, name: str) -> None:
        res = self.flwr("supernode", "register", str(self.keys[name].public), CONNECTION, "--name", name)
        if res.returncode != 0:
            raise RuntimeError(f"flwr supernode register {name} failed: {res.stdout[-500:]} {res.stderr[-500:]}")

    def start_supernode(self, name: str, key: Path | None = None, tag: str = "") -> Proc:
        node_cfg = {"name": name, "state-dir": str(self.state_dir(name)), "roster": str(self.roster),
                    **self.node_config}
        cmd = [*(self.supernode_cmd or [self._bin("flower-supernode")]), "--root-certificates", str(self.certs.ca_cert),
               "--superlink", f"{HOST}:{self.port}",
               "--auth-supernode-private-key", str(key or self.keys[name].private),
               "--node-config", node_config_arg(node_cfg), "--host", HOST, "--port", str(free_port())]
        proc = self.procs.start(f"supernode-{name}{tag}", cmd, self.env(name), self.logs)
        self.nodes[name] = proc
        return proc

    def restart_supernode(self, name: str, timeout: float = 180.0, retry: float = 5.0) -> Proc:
        """Start ``name`` again after its process died. Flower refuses to activate a key whose
        previous session is still counted online (2 heartbeats, 60 s by default), so retry
        until the SuperNode reports its node id, within ``timeout``."""
        end = time.monotonic() + timeout
        attempt = 0
        while time.monotonic() < end:
            attempt += 1
            proc = self.start_supernode(name, tag=f"-restart{attempt}")
            while proc.alive() and "SuperNode ID" not in proc.log_text() and time.monotonic() < end:
                time.sleep(0.2)
            if proc.alive() and "SuperNode ID" in proc.log_text():
                return proc
            proc.stop()
            time.sleep(retry)
        raise TimeoutError(f"SuperNode {name} could not rejoin within {timeout:.0f} s")

    def run_app(self, run_config: dict[str, Any]) -> int:
        """``flwr run`` the secure-sum app; returns the run id."""
        cfg = {"roster": str(self.roster), **run_config}
        res = self.flwr("run", str(APP_DIR), CONNECTION, "--run-config", node_config_arg(cfg), "--format", "json")
        try:
            doc = json.loads(res.stdout[res.stdout.index("{"):])
            return int(doc["run-id"])
        except (ValueError, KeyError) as err:
            raise RuntimeError(f"flwr run failed ({err}): {res.stdout[-800:]} {res.stderr[-800:]}") from None

    def run_log(self, run_id: int) -> str:
        """The ServerApp's log of run ``run_id`` (the SuperLink keeps it: ``flwr log --show``)."""
        res = self.flwr("log", str(run_id), CONNECTION, "--show")
        if res.returncode != 0:
            raise RuntimeError(f"flwr log {run_id} failed: {res.stdout[-500:]} {res.stderr[-500:]}")
        return res.stdout

    def stop(self) -> None:
        self.procs.stop_all()


def _wait_port(port: int, timeout: float, proc: Proc) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited early: {proc.log_text()[-800:]}")
        with socket.socket() as s:
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{proc.name} did not open port {port} within {timeout:.0f} s")
