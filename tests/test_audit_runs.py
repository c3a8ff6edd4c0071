"""`secure-fgrpo audit` on real (tiny, one-round) federations: plaintext shows every attack
succeeding and per-client data in clear; masked and CKKS show chance-level attacks, no
per-client plaintext, uniform / well-formed payloads and no key material at the server.

The test captures each client's true vector (it plays every party); the auditor never does."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import small_run

from secure_fgrpo.audit.estimates import estimate_inputs
from secure_fgrpo.audit.keyscan import KnownSecret, scan_key_material
from secure_fgrpo.audit.runner import audit_run
from secure_fgrpo.audit.view import load_view
from secure_fgrpo.cli import main
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.configio import to_dict
from secure_fgrpo.federation.client import Client
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.report import save_run_config

BACKENDS = ("plaintext", "masked", "ckks")


@pytest.fixture(scope="module")
def runs(quick_model_dir, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """One round per backend; returns run dir and the clients' true [e·Δ, e] by name."""
    out = {}
    for backend in BACKENDS:
        truth: dict[str, np.ndarray] = {}
        original = Client.prepare_input

        def capture(self, *args, _orig=original, _truth=truth, **kwargs):
            prepared = _orig(self, *args, **kwargs)
            _truth[self.name] = prepared.vector.copy()
            return prepared

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Client, "prepare_input", capture)
            cfg = config_from_dict(small_run(**{"federation.rounds": 1, "secure_sum.backend": backend}))
            run = tmp_path_factory.mktemp(backend) / "run"
            save_run_config(run, to_dict(cfg))
            Federation(cfg, run).run()
        assert sorted(truth) == ["a", "b", "c"]
        out[backend] = (run, truth)
    return out


def _audit(run: Path, *extra: str) -> tuple[int, dict]:
    rc = main(["audit", str(run), *extra])
    return rc, json.loads((run / "audit" / "report.json").read_text())


@pytest.fixture(scope="module")
def reports(runs) -> dict[str, tuple[int, dict]]:
    """``secure-fgrpo audit RUN --strict`` once per backend (the CLI path, exit code included)."""
    return {b: _audit(runs[b][0], "--strict") for b in BACKENDS}


def test_plaintext_report_shows_the_attacks_succeeding(runs, reports) -> None:
    run, truth = runs["plaintext"]
    rc, rep = reports["plaintext"]
    assert rc == 1  # --strict: the plaintext backend leaks per-client data
    s = rep["summary"]
    assert s["per_client_plaintext"] and s["checks_failed"] == []
    assert set(s["attacks"].values()) == {"succeeds"} and len(s["attacks"]) == 3
    assert [f["code"] for f in rep["flags"]] == ["plaintext-per-client-payload"]
    # What the server reads out of this run's own messages is each client's true weight.
    reads = {r["sender"]: r["weight"] for r in rep["server_reads"]}
    assert reads == pytest.approx({n: float(v[-1]) for n, v in truth.items()})
    assert (run / "audit" / "report.html").is_file()


@pytest.mark.parametrize("backend, check", [("masked", "masked-uniform"), ("ckks", "ckks-ciphertexts")])
def test_secure_reports_show_chance_and_no_per_client_plaintext(reports, backend: str, check: str) -> None:
    rc, rep = reports[backend]
    assert rc == 0  # --strict: no high flag, no failed check
    s = rep["summary"]
    assert not s["per_client_plaintext"] and s["high_flags"] == 0 and s["checks_failed"] == []
    assert set(s["attacks"].values()) == {"chance"}
    assert {c["name"]: c["status"] for c in rep["checks"]}[check] == "pass"
    assert rep["server_reads"] and not any(r["readable"] for r in rep["server_reads"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_update_recovery_on_the_real_run(runs, backend: str) -> None:
    """The attacker's estimate from each real message, scored against the captured truth."""
    run, truth = runs[backend]
    est = estimate_inputs(load_view(run))
    assert sorted(m.sender for m in est) == ["a", "b", "c"]
    d = truth["a"].size - 1
    for m in est:
        t = truth[m.sender]
        cos = float(m.vector[:d] @ t[:d] / (np.linalg.norm(m.vector[:d]) * np.linalg.norm(t[:d])))
        if backend == "plaintext":
            assert np.array_equal(m.vector, t)
        else:
            assert abs(cos) < 6 / math.sqrt(d), (backend, m.sender, cos)


def test_auditor_reads_only_the_server_folder(runs, tmp_path: Path) -> None:
    run, _ = runs["plaintext"]  # no secret randomness: two audits give identical reports
    only = tmp_path / "only-server"
    shutil.copytree(run / "server", only / "server")
    shutil.copy(run / "config.json", only / "config.json")
    a = audit_run(run, tmp_path / "a", seed=5)
    b = audit_run(only, tmp_path / "b", seed=5)
    a.pop("run"), b.pop("run")
    assert a == b


@pytest.mark.parametrize("backend", ["masked", "ckks"])
def test_no_client_secret_in_the_server_folder(runs, backend: str) -> None:
    run, _ = runs[backend]
    secrets = [KnownSecret(str(p.relative_to(run)), p.read_bytes())
               for p in (run / "clients").glob("*/keys/*/*") if p.suffix in (".key", ".bin")]
    assert len(secrets) == (9 if backend == "ckks" else 6)  # ckks: secret context; both: Ed25519 + X25519 keys
    assert scan_key_material(run / "server", secrets).status == "pass"


def test_planted_per_client_field_in_a_real_run_is_flagged(runs, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["ckks"][0], run)
    rows = [json.loads(x) for x in (run / "server" / "metrics.jsonl").read_text().splitlines()]
    rows[-1]["gain_b"] = 0.37  # a per-client gain leaking into the server's metrics
    (run / "server" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc, rep = _audit(run, "--strict", "--no-attacks")
    assert rc == 1
    assert rep["summary"]["per_client_plaintext"]
    assert [f["code"] for f in rep["flags"]] == ["per-client-metric"] and "gain_b" in rep["flags"][0]["where"]


def test_html_report_is_self_contained(runs, reports) -> None:
    run, _ = runs["plaintext"]
    import stat

    for name in ("report.html", "report.json"):  # they list what the server read of each client
        assert stat.S_IMODE((run / "audit" / name).stat().st_mode) == 0o600
    page = (run / "audit" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    for forbidden in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert forbidden not in page, forbidden
    srcs = page.count('src="')
    assert srcs == page.count('src="data:image/png;base64,') >= 5


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed here")
def test_report_renders_in_headless_chromium(runs, reports, tmp_path: Path) -> None:
    run, _ = runs["ckks"]
    png = tmp_path / "audit.png"
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tempfile.mkdtemp(dir=tmp_path)}", f"--screenshot={png}", "--window-size=1200,2000",
           (run / "audit" / "report.html").resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    import matplotlib.image as mpimg

    img = mpimg.imread(png)
    assert img.shape[:2] == (2000, 1200)
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50  # text, tables, pills and figures: not a blank page
