"""Checks on the payloads the server archived (``server/inbox/``).

- integrity: every transcript entry has its archived bytes, with the recorded digest;
- masked: every masked vector is uniform over the ring Z_2^k (chi-square per byte lane of
  each word, per message): a mask that is missing, reused or weak shows as structure;
- ckks: every input parses as ciphertexts of the federation's public context (its key id,
  its SEAL parameters) and the server's context holds no secret key.
"""

from __future__ import annotations

import json
import logging
import struct
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import chi2

from .view import AuditInputError, ServerView

log = logging.getLogger(__name__)

# The masked backend's MaskedInput encoding (secure_sum/masked/messages.py):
# b"SFM" | version u8 (1) | tag u8 (6) | u32 length | little-endian words (u32 or u64)
# | u32 complaint count | per complaint: u8 name length, name, 32-byte pair key (masked/blame.py)
# | u8 signature length (0 or 64) | signature.
MASKED_MAGIC, MASKED_TAG = b"SFM", 6


@dataclass
class CheckResult:
    name: str
    status: str  # "pass" | "fail" | "skipped"
    summary: str
    details: list[dict] = field(default_factory=list)


# ----------------------------------------------------------------------------- integrity
def check_archive(view: ServerView) -> CheckResult:
    if not view.archived:
        return CheckResult("archive", "skipped", "payloads were not archived (audit.archive_payloads = false): "
                           "payload checks and attacks on this run's bytes are not possible")
    missing, bad = [], []
    for e in view.entries:
        try:
            if view.payload(e) is None:
                missing.append(f"round {e.round} {e.stage} from {e.sender}")
        except AuditInputError as err:
            bad.append(str(err))
    if bad or missing:
        return CheckResult("archive", "fail", f"{len(bad)} archived payload(s) differ from the transcript, "
                           f"{len(missing)} missing", [{"problem": p} for p in bad + missing])
    return CheckResult("archive", "pass", f"all {len(view.entries)} payloads archived, digests match the transcript")


# ----------------------------------------------------------------------------- masked
def parse_masked_layout(payload: bytes) -> memoryview:
    """The word bytes of a MaskedInput message, from the documented layout alone."""
    if len(payload) < 9 or payload[:3] != MASKED_MAGIC or payload[4] != MASKED_TAG:
        raise ValueError("not a masked-input message (magic or tag)")
    (n,) = struct.unpack_from("<I", payload, 5)
    end = 9 + n
    pos = end + 4  # words, then a complaint count, complaints (name, 32-byte key), a signature
    if pos <= len(payload):
        (count,) = struct.unpack_from("<I", payload, end)
        for _ in range(min(count, len(payload))):
            if pos >= len(payload):
                break
            pos += 1 + payload[pos] + 32
        # The signature's length byte is always there (0 when unsigned): a payload that ends
        # before it is truncated.
        pos = pos + 1 + payload[pos] if pos < len(payload) else len(payload) + 1
    if pos != len(payload):
        raise ValueError("masked-input length field does not match the payload")
    return memoryview(payload)[9:end]


def masked_words(payload: bytes) -> memoryview:
    """The word bytes of a MaskedInput message; uses the backend's own decoder when present."""
    try:
        from ..secure_sum.masked.messages import decode
    except ImportError:  # pragma: no cover - a tree without the masked backend
        return parse_masked_layout(payload)
    return memoryview(decode("masked", payload).words)


def uniformity_pvalue(words: bytes | memoryview, word_bytes: int) -> tuple[float, list[float]]:
    """Chi-square test that each byte lane of the words is uniform on 0..255 (16 bins on the
    high nibble when there are too few words). Returns the Bonferroni p-value over lanes and
    the per-lane p-values. Uniform words over Z_2^k have uniform, independent byte lanes."""
    raw = np.frombuffer(words, dtype=np.uint8)
    if word_bytes < 1 or raw.size % word_bytes or raw.size == 0:
        raise ValueError(f"{raw.size} bytes is not a whole number of {word_bytes}-byte words")
    lanes = raw.reshape(-1, word_bytes)
    n = lanes.shape[0]
    bins = 256 if n >= 5 * 256 else 16
    ps = []
    for j in range(word_bytes):
        col = lanes[:, j] if bins == 256 else lanes[:, j] >> 4
        counts = np.bincount(col, minlength=bins).astype(np.float64)
        expected = n / bins
        stat = float(((counts - expected) ** 2).sum() / expected)
        ps.append(float(chi2.sf(stat, bins - 1)))
    return min(1.0, word_bytes * min(ps)), ps


# Family-wise false-alarm rate of masked-uniform over one run's messages. 1e-3 failed about one
# honest run in a thousand (a fresh clone's suite hit it: one byte lane at p = 2.7e-5); a vector
# sent unmasked or with a weak mask scores p < 1e-12 at the test's sizes, so 1e-6 loses no power there.
MASKED_UNIFORM_ALPHA = 1e-6


def check_masked_uniform(view: ServerView, alpha: float = MASKED_UNIFORM_ALPHA) -> CheckResult:
    entries = [e for e in view.entries if e.kind == "masked"]
    if not entries:
        return CheckResult("masked-uniform", "skipped", "no masked vectors in the transcript")
    if not view.archived:
        return CheckResult("masked-uniform", "skipped", "payloads not archived")
    _, options = view.backend_options()
    word_bytes = int(options.get("modulus_bits", 32)) // 8
    cut = alpha / len(entries)  # Bonferroni over messages: family-wise false alarm <= alpha
    details, failed = [], 0
    for e in entries:
        data = view.payload(e)
        if data is None:
            continue
        try:
            p, lanes = uniformity_pvalue(masked_words(data), word_bytes)
        except ValueError as err:
            details.append({"round": e.round, "sender": e.sender, "p_value": None, "ok": False, "error": str(err)})
            failed += 1
            continue
        ok = p >= cut
        failed += not ok
        details.append({"round": e.round, "sender": e.sender, "p_value": p, "lane_p_values": lanes, "ok": ok})
    status = "fail" if failed else "pass"
    return CheckResult("masked-uniform", status,
                       f"{len(details) - failed}/{len(details)} masked vectors pass the chi-square uniformity test "
                       f"over Z_2^{8 * word_bytes} (per-message threshold p >= {cut:.2g})", details)


# ----------------------------------------------------------------------------- ckks
def check_ckks(view: ServerView) -> CheckResult:
    entries = [e for e in view.entries if e.kind == "ciphertexts"]
    if not entries:
        return CheckResult("ckks-ciphertexts", "skipped", "no ciphertext messages in the transcript")
    import tenseal as ts
    import tenseal.sealapi as seal

    from ..secure_sum.ckks.sealio import SealIO, check_seal_header
    from ..secure_sum.ckks.wire import KIND_INPUT, WireError, decode_bundle

    kdir = view.server_dir / "keys" / "ckks"
    try:
        meta = json.loads((kdir / "meta.json").read_text())
        ctx = ts.context_from((kdir / "public_context.bin").read_bytes(), n_threads=1)
    except (OSError, ValueError) as err:
        return CheckResult("ckks-ciphertexts", "fail", f"cannot read the server's public context in {kdir}: {err}")
    details: list[dict] = [{"what": "server context", "secret_key": ctx.is_private(), "ok": not ctx.is_private()}]
    if not view.archived:
        return CheckResult("ckks-ciphertexts", "fail" if ctx.is_private() else "skipped",
                           "server context checked; payloads not archived", details)
    key_id = bytes.fromhex(meta["key_id"])
    sctx = ctx.data.seal_context()
    chain = set()
    data = sctx.first_context_data()
    while data is not None:
        chain.add(tuple(data.parms_id()))
        data = data.next_context_data()
    io = SealIO()
    limit = 3 * int(meta["params"]["N"]) * len(meta["params"]["coeff_mod_bit_sizes"]) * 8 + 4096
    for e in entries:
        payload = view.payload(e)
        if payload is None:
            continue
        problem = ""
        try:
            b = decode_bundle(payload)
            if b.kind != KIND_INPUT or b.key_id != key_id or b.round != e.round:
                problem = "bundle kind, key id or round does not match the federation's public context"
            for i, blob in enumerate(([b.gain] if b.gain is not None else []) + list(b.chunks)):
                if problem:
                    break
                reason = check_seal_header(blob, limit)
                if reason:
                    problem = f"ciphertext {i}: {reason}"
                    break
                ct = seal.Ciphertext()
                try:
                    io.load(ct, sctx, blob)
                except Exception:
                    problem = f"ciphertext {i}: not a valid ciphertext of the public context"
                    break
                if tuple(ct.parms_id()) not in chain or ct.size() != 2:
                    problem = f"ciphertext {i}: not a fresh ciphertext of the public context"
        except WireError as err:
            problem = f"malformed bundle: {err}"
        details.append({"round": e.round, "sender": e.sender, "ok": not problem, "problem": problem})
    io.close()
    bad = [d for d in details if not d["ok"]]
    n = len(details) - 1
    return CheckResult("ckks-ciphertexts", "fail" if bad else "pass",
                       f"server context holds {'A SECRET KEY' if ctx.is_private() else 'no secret key'}; "
                       f"{n - len([d for d in bad if 'round' in d])}/{n} inputs parse as ciphertexts of the "
                       f"federation's public context (key id {meta['key_id'][:8]}…)", details)
