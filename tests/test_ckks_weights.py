"""Weights evaluated by the server under encryption (weights = "server")."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import tenseal.sealapi as seal
from ckks_support import gain_inputs, make_fed, resign

from secure_fgrpo.secure_sum import ProtocolError
from secure_fgrpo.secure_sum.ckks import client_dir, server_dir, server_weight_input
from secure_fgrpo.secure_sum.ckks.keys import build_context
from secure_fgrpo.secure_sum.ckks.params import weights_params
from secure_fgrpo.secure_sum.ckks.poly import EncryptedPoly, ExpApprox
from secure_fgrpo.secure_sum.ckks.wire import decode_bundle, encode_bundle

G, TAU = 2.0, 1.0


def test_fit_error_shrinks_with_degree_and_is_measured_honestly() -> None:
    errs = [ExpApprox.fit(G, TAU, d).max_rel_error for d in (3, 7, 15)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[1] < 1e-4 and errs[2] < 1e-9
    p = ExpApprox.fit(G, TAU, 7)
    g = np.linspace(-G, G, 1001)
    rel = np.abs(p.weight(g, G) / np.exp(g / TAU) - 1)
    assert rel.max() <= p.max_rel_error * (1 + 1e-6) and rel.max() > 0.3 * p.max_rel_error


@pytest.mark.parametrize("degree", [3, 7])
def test_encrypted_polynomial_matches_the_plain_one(degree: int) -> None:
    params = weights_params(degree)
    ctx = build_context(params)
    sc, sk = ctx.data.seal_context(), ctx.data.secret_key()
    approx = ExpApprox.fit(G, TAU, degree)
    scale = 2.0 ** params.scale_bits
    poly = EncryptedPoly(sc, ctx.data.relin_keys(), approx, scale)
    enc, dec, encoder = seal.Encryptor(sc, sk), seal.Decryptor(sc, sk), seal.CKKSEncoder(sc)
    for g in (-G, -0.4, 1.3, G):
        pt = seal.Plaintext()
        encoder.encode(g / G, sc.first_parms_id(), scale, pt)
        ct = seal.Ciphertext()
        enc.encrypt_symmetric(pt, ct)
        out = poly.evaluate(ct)
        assert sc.get_context_data(out.parms_id()).chain_index() == 1  # depth levels consumed
        assert out.scale == scale
        res = seal.Plaintext()
        dec.decrypt(out, res)
        got = np.array(encoder.decode_double(res))[:8]
        want = approx.weight(g, G) / math.exp(approx.a)
        assert np.max(np.abs(got - want)) < 1e-7, (g, got[0], want)  # CKKS noise, p in (0, 1]


@pytest.fixture(scope="module")
def wfed(tmp_path_factory: pytest.TempPathFactory):
    return make_fed(tmp_path_factory.mktemp("w"), {"weights": "server", "tau": TAU, "gain_clip": G,
                                                   "poly_degree": 7, "reveal": "server-blind"}, n=3)


def test_server_weighted_update_matches_client_weights_within_the_error(wfed) -> None:
    dim = 20000  # two ciphertexts of 16384 reals
    spec = wfed.spec(dim=dim, rnd=1)
    sw, cw = gain_inputs(wfed.names, dim, seed=21, gain_clip=G, tau=TAU)
    out, server, clients = wfed.run(spec, sw)
    assert out.total is None and out.contributors == tuple(wfed.names)
    total = clients["h0"].result()
    expected = sum(cw.values())
    err_bound = wfed.backend.approx.max_rel_error + 1e-6  # polynomial + CKKS noise
    assert abs(total[-1] / expected[-1] - 1) < err_bound
    update, ref = total[:-1] / total[-1], expected[:-1] / expected[-1]
    assert np.linalg.norm(update - ref) / np.linalg.norm(ref) < 2 * err_bound
    assert server.stats["poly_seconds"] > 0  # the weights really were evaluated by the server


def test_gain_outside_the_clip_or_wrong_layout_is_refused(wfed) -> None:
    spec = wfed.spec(dim=10)
    client = wfed.backend.client("h0", spec, client_dir(wfed.run_dir, "h0"))
    with pytest.raises(ValueError, match="gain outside"):
        client.set_input(server_weight_input(np.zeros(9), 1.0, G * 1.01))
    with pytest.raises(ValueError, match="length 11"):
        client.set_input(np.zeros(10))


def test_gain_ciphertext_must_be_present_in_weights_mode(wfed) -> None:
    spec = wfed.spec(dim=10, rnd=0)
    client = wfed.backend.client("h0", spec, client_dir(wfed.run_dir, "h0"))
    client.set_input(server_weight_input(np.full(9, 0.01), 1.0, 0.5))
    msg = client.respond("input", None)
    b = dataclasses.replace(decode_bundle(msg.payload), gain=None)
    bad = dataclasses.replace(msg, payload=resign(wfed, spec, "h0", encode_bundle(b)))  # its own, re-signed
    with pytest.raises(ProtocolError, match="gain ciphertext presence"):
        wfed.backend.server(spec, server_dir(wfed.run_dir)).process("input", {"h0": bad})
