"""Deployment files and the Flower adapter's pieces, without starting Flower: certificates that
a TLS client accepts (and one with another CA rejects), SuperNode keys Flower can load, stage
0's codec and each node's policy, the pickled client state, the app bundle."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import socket
import ssl
import stat
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from secure_fgrpo.cli import main
from secure_fgrpo.deploy.certs import make_certs
from secure_fgrpo.deploy.node_keys import make_node_key
from secure_fgrpo.flower.codec import CodecError, RoundSetup
from secure_fgrpo.flower.policy import NodePolicy, PolicyError
from secure_fgrpo.flower.state import StateError, dump_client, load_client
from secure_fgrpo.secure_sum import SumSpec, make_backend
from secure_fgrpo.secure_sum.masked import quantisation_bound
from secure_fgrpo.secure_sum.masked.backend import client_state_dir
from secure_fgrpo.secure_sum.masked.keys import identity_path

NAMES = ("hosp-a", "hosp-b", "hosp-c")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tls_handshake(certs: Path, trust: Path, host: str) -> None:
    """A TLS server with the SuperLink certificate on loopback; a client trusting ``trust``."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(certs / "server.pem", certs / "server.key")
    with socket.create_server(("127.0.0.1", 0)) as lsock:
        port = lsock.getsockname()[1]

        def serve() -> None:
            conn, _ = lsock.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        client_ctx = ssl.create_default_context(cafile=str(trust))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                    client_ctx.wrap_socket(raw, server_hostname=host):
                pass
        finally:
            t.join(timeout=10)


def test_certs_are_private_and_verify_only_against_their_ca(tmp_path: Path) -> None:
    assert main(["deploy", "certs", "--out", str(tmp_path / "c"), "--host", "127.0.0.1", "--host", "localhost"]) == 0
    c = tmp_path / "c"
    assert _mode(c / "ca.key") == 0o600 and _mode(c / "server.key") == 0o600
    cert = x509.load_pem_x509_certificate((c / "server.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    _tls_handshake(c, c / "ca.crt", "127.0.0.1")
    _tls_handshake(c, c / "ca.crt", "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_handshake(c, c / "ca.crt", "superlink.example")  # not a name in the certificate
    make_certs(tmp_path / "other", ["127.0.0.1"])
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_handshake(c, tmp_path / "other" / "ca.crt", "127.0.0.1")  # another federation's CA


def test_certs_refuse_to_overwrite_and_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_certs(tmp_path, ["127.0.0.1"])
    before = (tmp_path / "ca.key").read_bytes()
    assert main(["deploy", "certs", "--out", str(tmp_path), "--host", "127.0.0.1"]) == 2
    out = " ".join(capsys.readouterr().out.split())  # rich wraps lines
    assert "ca.crt already exists" in out and "Traceback" not in out
    assert (tmp_path / "ca.key").read_bytes() == before
    with pytest.raises(ValueError, match="empty host"):
        make_certs(tmp_path / "x", [" "])


def test_node_key_is_p384_openssh_and_private(tmp_path: Path) -> None:
    paths = make_node_key(tmp_path, "hosp-a")
    key = load_ssh_private_key(paths.private.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1)
    assert _mode(paths.private) == 0o600
    assert paths.public.read_text().startswith("ecdsa-sha2-nistp384 ")
    with pytest.raises(ValueError, match="already exists"):
        make_node_key(tmp_path, "hosp-a")
    with pytest.raises(ValueError, match="--name"):
        make_node_key(tmp_path, "../escape")


def _setup(**over: object) -> RoundSetup:
    spec: dict[str, Any] = {"round": 3, "dim": 9, "data_bound": 1.5, "weight_bound": 2.0, "participants": NAMES,
                            "threshold": 2, "seed": 7}
    spec.update(over)
    return RoundSetup(SumSpec(**spec), "masked", {"signed": True, "modulus_bits": 32})


def test_setup_codec_round_trips_and_names_bad_fields() -> None:
    s = _setup()
    assert RoundSetup.from_bytes(s.to_bytes()) == s
    raw = s.to_bytes().decode()
    cases = {b"\xff": "not UTF-8", b"[]": "setup.version",
             raw.replace('"threshold": 2', '"threshold": "2"').encode(): "setup.spec.threshold",
             raw.replace('"threshold": 2', '"threshold": 9').encode(): "SumSpec.threshold",
             raw.replace('"seed": 7', '"seed": 7, "extra": 1').encode(): "unexpected field"}
    for bad, field in cases.items():
        with pytest.raises(CodecError, match=field):
            RoundSetup.from_bytes(bad)


def test_node_policy_refuses_what_it_did_not_agree_to(tmp_path: Path) -> None:
    policy = NodePolicy.from_node_config({"name": "hosp-a", "state-dir": str(tmp_path), "roster": "r.json",
                                          "security-min-threshold": 0.7, "max-dim": 100})
    policy.check(_setup(), last_round=2)
    refusals = {
        "setup.spec.participants": (_setup(participants=("hosp-b", "hosp-c")), 0),
        "setup.spec.round": (_setup(), 3),
        "setup.spec.dim": (_setup(dim=101), 0),
        "setup.options: roster": (RoundSetup(_setup().spec, "masked", {"roster": "/srv/evil.json"}), 0),
        "setup.options.signed": (RoundSetup(_setup().spec, "masked", {"signed": False}), 0),
        "setup.backend": (RoundSetup(_setup().spec, "plaintext", {}), 0),
    }
    for field, (setup, last) in refusals.items():
        with pytest.raises(PolicyError, match=field):
            policy.check(setup, last_round=last)
    with pytest.raises(PolicyError, match=r"security.gamma must be a number"):
        NodePolicy.from_node_config({"name": "a", "state-dir": "s", "roster": "r", "security-gamma": 2})
    # The threshold rule has one home, the institution's SecurityPolicy, which the masked client
    # applies before it advertises: a round below this node's 0.7·n is refused naming the key.
    assert policy.security.min_threshold == 0.7
    from secure_fgrpo.secure_sum import make_backend
    from secure_fgrpo.secure_sum.masked.policy import PolicyRefusal

    low = _setup(participants=NAMES, threshold=len(NAMES) // 2 + 1)
    backend = make_backend("masked", {"signed": False, "client_policies": {"hosp-a": policy.security}})
    client = backend.client("hosp-a", low.spec, tmp_path)
    client.set_input(np.zeros(low.spec.dim))
    with pytest.raises(PolicyRefusal, match=r"security.min_threshold"):
        client.respond("advertise", None)
    with pytest.raises(PolicyError, match="'name' is required"):
        NodePolicy.from_node_config({"state-dir": "s", "roster": "r"})


def synthetic_input(seed: int, spec: SumSpec) -> np.ndarray:
    """A stand-in ``[e·Δ, e]`` inside the spec's bounds, deterministic in (seed, round, dim)."""
    rng = np.random.default_rng([int(seed), int(spec.round), int(spec.dim)])
    data = rng.normal(size=spec.dim - 1)
    data *= 0.5 * spec.data_bound / max(float(np.linalg.norm(data)), 1e-12)
    return np.concatenate([data, [rng.uniform(0.25, 1.0) * spec.weight_bound]])


def test_pickled_client_state_between_stages_gives_the_same_sum(tmp_path: Path) -> None:
    """Each client is dumped and restored before every stage, as between two ClientApp
    processes; the sum is still exact within the fixed-point bound, and the long-term
    identity key never enters the stored state."""
    backend = make_backend("masked", {})
    backend.setup(tmp_path, list(NAMES))
    spec = SumSpec(1, 65, 1.0, 1.0, NAMES, 2)
    server = backend.server(spec, tmp_path)
    states = {n: client_state_dir(tmp_path, n) for n in NAMES}
    clients = {n: backend.client(n, spec, states[n]) for n in NAMES}
    for i, n in enumerate(NAMES):
        clients[n].set_input(synthetic_input(i, spec))
    replies: dict = {}
    for stage in server.stages:
        inbound = {}
        for n in NAMES:
            raw = dump_client(clients[n])
            assert identity_path(states[n]).read_bytes() not in raw
            clients[n] = load_client(raw, states[n])
            out = clients[n].respond(stage, replies.get(n))
            assert out is not None
            inbound[n] = out
        replies = server.process(stage, inbound)
    total = server.outcome().total
    exact = np.sum([synthetic_input(i, spec) for i in range(3)], axis=0)
    assert np.max(np.abs(total - exact)) <= quantisation_bound(spec)


def test_restricted_unpickler_refuses_foreign_classes(tmp_path: Path) -> None:
    evil = pickle.dumps(os.getcwd)  # a callable outside the allowed modules
    with pytest.raises(StateError, match=r"refusing to restore posix.getcwd"):
        load_client(evil, tmp_path)
    from secure_fgrpo.secure_sum.masked import keys

    ours = pickle.dumps(keys.write_roster)  # a function of ours that writes files: not a class
    with pytest.raises(StateError, match=r"refusing to restore secure_fgrpo.secure_sum.identity.write_roster"):
        load_client(ours, tmp_path)
    with pytest.raises(StateError, match="cannot restore"):
        load_client(b"not a pickle", tmp_path)
    with pytest.raises(StateError, match="does not hold a SumClient"):
        load_client(pickle.dumps({"a": 1}), tmp_path)


def test_app_bundle_holds_only_the_app(tmp_path: Path) -> None:
    """`flwr run` uploads the app folder as a FAB: a run folder or data file placed there
    must not ride along."""
    build = pytest.importorskip("flwr.cli.build", reason="needs the 'flower' extra")
    from secure_fgrpo.deploy.loopback import APP_DIR

    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "runs" / "demo").mkdir(parents=True)
    (app / "runs" / "demo" / "config.json").write_text("{}")
    (app / "patients.jsonl").write_text("{}\n")
    (app / "notes.md").write_text("private\n")
    names = zipfile.ZipFile(io.BytesIO(build.build_fab_from_disk(app))).namelist()
    assert sorted(n for n in names if not n.startswith(".info/")) == ["pyproject.toml", "sfg_client.py",
                                                                        "sfg_server.py"]


def test_client_app_does_not_import_the_training_stack() -> None:
    """Flower may start a ClientApp process per message: its import must stay light."""
    pytest.importorskip("flwr", reason="needs the 'flower' extra")
    import subprocess
    import sys

    code = ("import sys, sfg_client; heavy = ('torch', 'transformers', 'peft', 'tenseal', 'opacus', "
            "'datasets'); print(','.join(m for m in heavy if m in sys.modules))")
    from secure_fgrpo.deploy.loopback import APP_DIR

    res = subprocess.run([sys.executable, "-c", code], cwd=APP_DIR, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-800:]
    assert res.stdout.strip() == ""
