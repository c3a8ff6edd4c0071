"""Canary prompts planted at one client and the membership test the server can run with its
view of that client's update.

The scorer has teeth, modest ones: an update that did learn the planted canaries (supervised
steps on them) separates planted from held-out canaries (AUC 0.78 for 6 planted among 64, LoRA
r=4 on the tiny model, which memorises random codes only partly); an unrelated update of the
same size does not (AUC 0.43). In a real one-round plaintext federation with canaries planted at client b, the
server reads b's exact update from b's message, so it runs the test with the client's own
update; the measured AUC is printed, not asserted (one round of GRPO on the tiny model leaves
no measurable memorisation of random codes, which the policy never samples). Secret-choice
canaries (below) are what GRPO can reinforce; their real-run measurement per backend is
benchmarks/audit_canary.py."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_run

from secure_fgrpo.audit.canary import (
    label_logprobs,
    make_canaries,
    prompt_membership,
    split_canaries,
    update_from_estimate,
    write_client_data,
)
from secure_fgrpo.audit.estimates import estimate_inputs
from secure_fgrpo.audit.view import load_view
from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.client import Client
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.model.load import load_base
from secure_fgrpo.model.lora import LoraSpec, attach_lora
from secure_fgrpo.model.vector import VectorLayout, to_vector
from secure_fgrpo.tasks import FAMILIES

log = logging.getLogger(__name__)
PLANTED, TOTAL = 6, 64


@pytest.fixture(scope="module")
def model(quick_model_dir):
    torch.manual_seed(0)
    base, tok = load_base(str(quick_model_dir))
    m = attach_lora(base, LoraSpec(r=4))
    return m, tok, VectorLayout.of(m)


@pytest.fixture(scope="module")
def canaries() -> tuple[list, list]:
    return split_canaries(make_canaries(TOTAL, seed=4), PLANTED, seed=5)


def test_canaries_are_distinct_valid_problems(canaries) -> None:
    planted, held = canaries
    allc = planted + held
    assert len({p.prompt for p in allc}) == TOTAL and len(planted) == PLANTED
    fam = FAMILIES["numeric"]
    assert all(fam.extract(p.answer) == p.answer and len(p.prompt) <= 40 and len(p.answer) == 3 for p in allc)
    assert split_canaries(make_canaries(TOTAL, 4), PLANTED, 5) == canaries  # public, reproducible


def _memorise(model, tok, layout, base: np.ndarray, planted: list, steps: int = 40,
              lr: float = 3e-2) -> np.ndarray:
    """An update that learned the planted canaries: supervised steps on their answers."""
    from secure_fgrpo.model.vector import load_vector

    load_vector(model, layout, base)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    tok.padding_side, side = "right", tok.padding_side
    enc = tok([p.prompt + p.answer for p in planted], return_tensors="pt", padding=True)
    tok.padding_side = side
    ids, att = enc["input_ids"], enc["attention_mask"]
    mask = att.clone()
    for i, p in enumerate(planted):  # train on the answer tokens only
        mask[i, : len(tok(p.prompt)["input_ids"])] = 0
    for _ in range(steps):
        opt.zero_grad()
        logits = model(input_ids=ids, attention_mask=att).logits[:, :-1]
        lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
        loss = -(lp * mask[:, 1:]).sum() / len(planted)
        loss.backward()
        opt.step()
    delta = to_vector(model, layout) - base
    load_vector(model, layout, base)
    return delta.astype(np.float64)


def test_scorer_detects_a_memorising_update_and_not_a_random_one(model, canaries) -> None:
    m, tok, layout = model
    planted, held = canaries
    base = to_vector(m, layout).astype(np.float64)
    before = label_logprobs(m, tok, planted[:2])
    delta = _memorise(m, tok, layout, base, planted)
    assert np.allclose(label_logprobs(m, tok, planted[:2]), before)  # the model was restored
    hit = prompt_membership(m, tok, layout, base, delta, planted, held)
    assert hit.auc > 0.7 and hit.mean_observed > hit.mean_unobserved + 0.5
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(delta.size) * np.linalg.norm(delta) / np.sqrt(delta.size)
    miss = prompt_membership(m, tok, layout, base, noise, planted, held)
    assert abs(miss.auc - 0.5) < 0.25 and hit.auc > miss.auc + 0.15
    log.warning("canary scorer: memorising update AUC %.3f (eps_lower %.3g), random update AUC %.3f",
                hit.auc, hit.epsilon_lower, miss.auc)


def test_update_from_estimate_divides_by_weight_and_clips() -> None:
    est = np.array([3.0, 4.0, 2.0])  # [e·Δ, e] with e = 2: Δ = (1.5, 2), norm 2.5
    assert np.allclose(update_from_estimate(est, clip=10.0), [1.5, 2.0])
    assert np.linalg.norm(update_from_estimate(est, clip=1.0)) == pytest.approx(1.0)
    garbage = np.array([1e9, -3e9, -7.0])  # a masked word read as a weight: negative, not divided
    assert np.linalg.norm(update_from_estimate(garbage, clip=4.0)) == pytest.approx(4.0)


def test_canaries_planted_at_one_client_of_a_real_federation(model, canaries, tmp_path: Path) -> None:
    planted, held = canaries
    import random

    rng = random.Random(9)
    filler = [FAMILIES["vitals"].sample(rng) for _ in range(12)]  # trainable rows: b's weight is not 0
    data, held_file = write_client_data(tmp_path / "b.jsonl", filler[6:] + planted * 3, filler[:6])
    raw = small_run(**{"federation.rounds": 1})
    raw["clients"][1] = {"name": "b", "data": str(data), "eval_data": str(held_file), "reward": {"scale": 10.0}}
    cfg = config_from_dict(raw)
    truth: dict[str, np.ndarray] = {}
    original = Client.prepare_input

    def capture(self, *args, **kwargs):
        prepared = original(self, *args, **kwargs)
        truth[self.name] = prepared.vector.copy()
        return prepared

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Client, "prepare_input", capture)
        fed = Federation(cfg, tmp_path / "run")
        base = fed.global_model.state.vector.astype(np.float64).copy()
        fed.run()
    # Planted at b: b's training pool holds every planted canary, the held-out ones nowhere.
    pool = {p.prompt for p in fed.data.clients["b"].train}
    assert {p.prompt for p in planted} <= pool and not {p.prompt for p in held} & pool
    # The server's estimate of b's update, from b's archived message alone, is b's exact update.
    est = {m.sender: m for m in estimate_inputs(load_view(tmp_path / "run"))}["b"]
    assert np.array_equal(est.vector, truth["b"])
    server_view = update_from_estimate(est.vector, cfg.federation.delta_clip)
    own = truth["b"][:-1] / truth["b"][-1]
    m, tok, layout = fed.model, fed.tok, fed.layout
    by_server = prompt_membership(m, tok, layout, base, server_view, planted, held)
    by_client = prompt_membership(m, tok, layout, base, own, planted, held)
    assert by_server.auc == pytest.approx(by_client.auc)  # the server tests with the client's own power
    log.warning("canary prompts planted at b (1 GRPO round, plaintext): membership AUC %.3f, empirical eps %.3g",
                by_server.auc, by_server.epsilon)


# --- Secret-choice canaries (the design GRPO can reinforce) ---------------------------------

from secure_fgrpo.audit.canary import CHOICE_LETTERS, choice_membership, choice_membership_scores, make_choice_canaries  # noqa: E402


def test_choice_canaries_differ_only_by_tag_and_balance_the_letters() -> None:
    cs = make_choice_canaries(30, seed=1)
    assert len({c.prompt for c in cs}) == 30 and make_choice_canaries(30, seed=1) == cs
    assert {c.prompt[6:] for c in cs} == {"? a)70 b)74 c)78="}  # the readings say nothing
    assert [sum(c.answer == x for c in cs) for x in CHOICE_LETTERS] == [10, 10, 10]
    fam = FAMILIES["choice"]
    assert all(fam.extract(c.answer) == c.answer and len(c.prompt) <= 40 for c in cs)


def test_choice_score_ignores_a_global_letter_preference_and_sees_a_planted_one() -> None:
    cs = make_choice_canaries(30, seed=2)
    shift = np.zeros((30, 3))
    shift[:, 1] += 2.0  # the update prefers "b" everywhere: not membership
    assert np.allclose(choice_membership_scores(shift, cs), 0.0)
    for i in range(6):  # the first six learned their own letter
        shift[i, CHOICE_LETTERS.index(cs[i].answer)] += 1.0
    s = choice_membership_scores(shift, cs)
    assert s[:6].min() > s[6:].max()


def test_choice_scorer_on_the_model_has_teeth(model) -> None:
    m, tok, layout = model
    cs = make_choice_canaries(48, seed=3)
    planted, held = split_canaries(cs, 8, seed=4)
    base = to_vector(m, layout).astype(np.float64)
    # lr 3e-3 x 100 steps: on the Llama-architecture embedded model, 3e-2 only learns a global
    # letter preference (AUC 0.49), 3e-3 memorises the tags (AUC 0.99; measured once, seed 0).
    delta = _memorise(m, tok, layout, base, planted, steps=100, lr=3e-3)
    hit = choice_membership(m, tok, layout, base, delta, planted, held)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(delta.size) * np.linalg.norm(delta) / np.sqrt(delta.size)
    miss = choice_membership(m, tok, layout, base, noise, planted, held)
    assert hit.auc > 0.7 and abs(miss.auc - 0.5) < 0.25 and hit.auc > miss.auc + 0.15
    log.warning("choice canaries: memorising update AUC %.3f (eps %.3g), random update AUC %.3f",
                hit.auc, hit.epsilon, miss.auc)
