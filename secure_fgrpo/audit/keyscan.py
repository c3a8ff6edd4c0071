"""Look for key material anywhere under ``RUN/server/``.

Three kinds of evidence, each enough to fail the check:
- text patterns of private keys (PEM/OpenSSH headers, JSON fields named like a secret);
- TenSEAL contexts that carry a secret key (any file whose name says "context", and any
  SEAL/TenSEAL file under ``server/keys/``, is loaded and asked ``is_private()``);
- known secret bytes (optional): an institution can check that *its own* secret (a key file,
  a secret context) appears nowhere in the server's folder, raw, hex or base64, without ever
  giving it to the server. Tests pass the clients' secrets here; the auditor never reads them.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from .checks import CheckResult

log = logging.getLogger(__name__)

PEM_PRIVATE = re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----|-----BEGIN OPENSSH PRIVATE KEY-----")
JSON_SECRET = re.compile(rb'"(?:[a-z_]*(?:secret|private)[a-z_]*|sk)"\s*:\s*"[0-9A-Za-z+/=]{16,}"', re.I)
WINDOW = 32  # bytes of a long secret that must match verbatim to count as a leak
MAX_WINDOWS = 64


@dataclass(frozen=True)
class KnownSecret:
    """A secret to look for: ``label`` names it in the report (never the bytes)."""

    label: str
    data: bytes


def _secret_part(secret: KnownSecret) -> KnownSecret:
    """A secret TenSEAL context shares its public parameters with the server's public context:
    look for its secret key instead, or every public context would match."""
    if len(secret.data) <= 2 * WINDOW:
        return secret
    try:
        import tenseal as ts

        ctx = ts.context_from(secret.data, n_threads=1)
    except Exception:
        return secret
    if not ctx.is_private():
        return secret
    from ..secure_sum.ckks.sealio import SealIO

    io = SealIO()
    try:
        return KnownSecret(f"{secret.label} (its secret key)", io.dump(ctx.data.secret_key()))
    finally:
        io.close()


def _needles(secret: KnownSecret) -> list[tuple[str, bytes]]:
    d = secret.data
    if len(d) <= 2 * WINDOW:
        return [("raw", d), ("hex", d.hex().encode()), ("hex", d.hex().upper().encode()),
                ("base64", base64.b64encode(d).rstrip(b"="))]
    step = max(WINDOW, (len(d) - WINDOW) // MAX_WINDOWS)
    return [("raw", d[i:i + WINDOW]) for i in range(0, len(d) - WINDOW + 1, step)]


def _private_context(path: Path, data: bytes) -> bool | None:
    """True if ``data`` is a TenSEAL context holding a secret key; None if it is not a context."""
    try:
        import tenseal as ts

        ctx = ts.context_from(data, n_threads=1)
    except Exception:
        return None
    return bool(ctx.is_private())


def scan_key_material(server_dir: Path, known: list[KnownSecret] | None = None) -> CheckResult:
    server_dir = Path(server_dir)
    if not server_dir.is_dir():
        return CheckResult("key-material", "fail", f"{server_dir} is not a folder")
    needles = [(s.label, form, n) for s in map(_secret_part, known or []) for form, n in _needles(s)]
    findings: list[dict] = []
    files = sorted(p for p in server_dir.rglob("*") if p.is_file())
    for path in files:
        rel = str(path.relative_to(server_dir.parent))
        data = path.read_bytes()
        if PEM_PRIVATE.search(data):
            findings.append({"file": rel, "evidence": "PEM/OpenSSH private key header"})
        if JSON_SECRET.search(data):
            findings.append({"file": rel, "evidence": "a JSON field named like a secret key"})
        maybe_context = "context" in path.name.lower() or (
            "keys" in path.parts and data[:2] != b"{\n" and path.suffix != ".json")
        if maybe_context and _private_context(path, data):
            findings.append({"file": rel, "evidence": "a TenSEAL context holding a secret key"})
        matched: set[str] = set()
        for label, form, needle in needles:
            if label not in matched and needle in data:
                matched.add(label)
                findings.append({"file": rel, "evidence": f"bytes of the known secret {label!r} ({form})"})
    if findings:
        return CheckResult("key-material", "fail", f"key material found in {len({f['file'] for f in findings})} "
                           f"file(s) under {server_dir.name}/", findings)
    extra = f", and {len(known)} known secret(s) checked" if known else ""
    return CheckResult("key-material", "pass", f"no private-key pattern or secret context in {len(files)} files "
                       f"under {server_dir.name}/{extra}")
