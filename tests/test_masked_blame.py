"""Issue 13 item 5: one malicious client costs at most one round. A client that seals bad
shares is blamed on signed evidence, its neighbours do not withdraw, the round sums exactly
over the others; a false complaint is rejected by name; an unprovable one leaves both parties
out of this round only; a wrong unmask share names its holder; the federation never samples a
blamed client again."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from secure_fgrpo.secure_sum import DropSchedule, run_secure_sum
from secure_fgrpo.secure_sum.masked import crypto
from secure_fgrpo.secure_sum.masked.blame import sealed_sign_parts, share_aad
from secure_fgrpo.secure_sum.masked.client import MaskedClient
from secure_fgrpo.secure_sum.masked.simulate import ListRecorder, make_round, make_spec


class _BadSealer(MaskedClient):
    """Seals garbage (or confirms a wrong key) for ``targets`` and signs it: provable, or not."""

    targets: set[str] | None = None  # None: every holder
    wrong_key = False

    def _stage_share(self, stage, book):
        up = super()._stage_share(stage, book)
        entries = []
        for holder, blob, confirm, _ in up.entries:
            if self.targets is None or holder in self.targets:
                if self.wrong_key:
                    confirm = os.urandom(32)
                else:
                    blob = blob[:20] + bytes([blob[20] ^ 1]) + blob[21:]
            entries.append((holder, blob, confirm, self._sign("sealed", *sealed_sign_parts(self.name, holder, blob,
                                                                                           confirm))))
        return dataclasses.replace(up, entries=tuple(entries))


class _FalseComplainer(MaskedClient):
    """Complains about a share that opened fine (revealing the right key)."""

    def _stage_masked_input(self, stage, fwd):
        out = super()._stage_masked_input(stage, fwd)
        owner = sorted(o for o in self._held if o != self.name)[0]
        key = crypto.agree(self._keys.c_private, self._book[owner][0], share_aad(self.ctx, owner, self.name))
        filed = ((owner, key),)
        return dataclasses.replace(out, complaints=filed, signature=self._sign(
            "masked", *self.ctx.masked_parts(self.name, out.words, filed)))


def _round(tmp_path: Path, n: int, cls: type, who: int = 0, **attrs: object):
    t = max(2, int(np.ceil(0.66 * n)))
    sim = make_round(tmp_path, make_spec(n, 30, t, round_=3))
    bad = sim.spec.participants[who]
    sim.clients[bad].__class__ = cls
    for k, v in attrs.items():
        setattr(sim.clients[bad], k, v)
    out = run_secure_sum(sim.server, sim.clients, ListRecorder(), DropSchedule())
    return sim, bad, out


def _exact(sim, out) -> None:
    assert not out.aborted, out.reason
    exact = sum(sim.inputs[c] for c in out.contributors)
    assert np.abs(out.total - exact).max() <= out.stats["quantisation_bound"]


@pytest.mark.parametrize("n", [5, 10, 25])
def test_a_client_sealing_bad_shares_is_blamed_and_the_round_completes(tmp_path: Path, n: int,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    sim, bad, out = _round(tmp_path, n, _BadSealer)
    _exact(sim, out)
    assert bad not in out.contributors and len(out.contributors) == n - 1  # nobody withdrew
    assert set(out.blamed) == {bad} and "does not open" in out.blamed[bad]
    assert "withdrew" not in caplog.text


def test_one_bad_share_is_enough_evidence(tmp_path: Path) -> None:
    sim = make_round(tmp_path / "probe", make_spec(10, 30, 7, round_=3))
    target = {sim.spec.participants[4]}
    sim, bad, out = _round(tmp_path, 10, _BadSealer, targets=target)
    _exact(sim, out)
    assert set(out.blamed) == {bad}


def test_an_unprovable_complaint_leaves_both_out_of_this_round_only(tmp_path: Path) -> None:
    sim, bad, out = _round(tmp_path, 10, _BadSealer, targets={"client-004"}, wrong_key=True)
    _exact(sim, out)
    assert out.blamed == {}
    assert bad not in out.contributors and "client-004" not in out.contributors
    assert len(out.contributors) == 8


def test_a_false_complaint_is_rejected_naming_the_holder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sim, bad, out = _round(tmp_path, 10, _FalseComplainer, who=2)
    _exact(sim, out)
    assert bad not in out.contributors and out.blamed == {}
    assert f"rejected message from {bad!r} at stage 'masked_input': false complaint" in caplog.text


def test_a_wrong_unmask_share_names_its_holder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: an uncaught ShamirError (or an aborted round). Now: the holder is dropped."""

    class _WrongShare(MaskedClient):
        def _stage_unmask(self, stage, req):
            out = super()._stage_unmask(stage, req)
            p, raw = out.self_shares[0]
            return dataclasses.replace(out, self_shares=((p, bytes(65) + bytes([raw[-1] ^ 1])), *out.self_shares[1:]))

    sim, bad, out = _round(tmp_path, 7, _WrongShare, who=1)
    _exact(sim, out)
    assert f"rejected message from {bad!r} at stage 'unmask'" in caplog.text


def test_the_federation_never_samples_a_blamed_client_again(tmp_path: Path) -> None:
    from secure_fgrpo.config import config_from_dict
    from secure_fgrpo.federation.server import Server

    cfg = config_from_dict({"clients": [{"name": f"c{i}", "families": {"unit": 1.0}} for i in range(4)],
                            "secure_sum": {"backend": "masked"}})
    server = Server(tmp_path, cfg, [c.name for c in cfg.clients])
    assert "c1" in server.participants(2)
    server.exclude({"c1": "round 1: signed a sealed share that does not open"})
    again = Server(tmp_path, cfg, [c.name for c in cfg.clients])  # survives a restart
    assert all("c1" not in again.participants(r) for r in range(2, 12))
    assert again.excluded["c1"].startswith("round 1")
