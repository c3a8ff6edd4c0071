"""PubSwap's selective replacement (federation/pubswap.py) on hand-made groups: which responses
are replaced, the advantages that result, and that a pool response the client's own grader
does not score correct is never used."""

from __future__ import annotations

import pytest
import torch

from secure_fgrpo.federation.pubswap import replace_incorrect, usable_pool, with_rows
from secure_fgrpo.grpo.advantages import group_advantages, informative_groups
from secure_fgrpo.model.chat import encode_prompts
from secure_fgrpo.model.load import load_base
from secure_fgrpo.rollout.base import assemble_batch
from secure_fgrpo.tasks import RewardSpec, score
from secure_fgrpo.tasks.base import Problem


def test_only_incorrect_responses_are_replaced_in_order() -> None:
    texts, rewards, replaced = replace_incorrect(["a", "b", "c", "d"], [1.0, 0.0, 0.0, 1.0], ["X"], 1.0, 1.0)
    assert texts == ["a", "X", "c", "d"] and rewards == [1.0, 1.0, 0.0, 1.0]
    assert replaced == [False, True, False, False]
    # mean 0.75, Bessel std 0.5: advantages (r - 0.75) / (0.5 + 1e-4)
    adv = group_advantages(torch.tensor(rewards), 4)
    want = torch.tensor([0.25, 0.25, -0.75, 0.25]) / 0.5001
    assert torch.allclose(adv, want, atol=1e-6)


def test_all_wrong_group_gains_signal_and_correct_group_is_untouched() -> None:
    # an all-wrong group carries no GRPO signal; two pool responses make it informative
    before = torch.tensor([0.0, 0.0, 0.0, 0.0])
    assert not informative_groups(before, 4).item()
    texts, rewards, replaced = replace_incorrect(["w", "x", "y", "z"], before.tolist(), ["R1", "R2"], 1.0, 1.0)
    assert texts == ["R1", "R2", "y", "z"] and replaced == [True, True, False, False]
    adv = group_advantages(torch.tensor(rewards), 4)  # mean 0.5, std sqrt(1/3)
    s = (1 / 3) ** 0.5 + 1e-4
    assert torch.allclose(adv, torch.tensor([0.5, 0.5, -0.5, -0.5]) / s, atol=1e-6)
    # a group that is right throughout keeps every response
    assert replace_incorrect(["a", "b"], [1.0, 1.0], ["R"], 1.0, 1.0)[2] == [False, False]
    # partial credit below full marks counts as incorrect: reward 10 is full marks at scale 10
    assert replace_incorrect(["a", "b"], [7.5, 10.0], ["R"], 10.0, 10.0)[:2] == (["R", "b"], [10.0, 10.0])


@pytest.fixture(scope="module")
def tok(quick_model_dir):
    return load_base(str(quick_model_dir))[1]


def test_pool_is_filtered_by_own_grader_and_rows_rebuilt(tok) -> None:
    problem = Problem("temp 38.4 c fever? (>=38.0)", "yes", "vitals")
    spec = RewardSpec()

    def grade(p: Problem, text: str, done: bool) -> float:
        return score(p, text, done, spec)

    right = next(t for t in ("yes", " yes", "yes ") if grade(problem, t, True) == 1.0)
    ok, refused = usable_pool(tok, problem, [right, "no", right], grade, 1.0, 6)
    assert [t for t, _ in ok] == [right] and refused == 1  # "no" refused by the grader; the repeat used once
    enc = encode_prompts(tok, [problem.prompt] * 2)
    wrong = [tok.convert_tokens_to_ids(c) for c in "no"] + [tok.eos_token_id, tok.pad_token_id]
    seq = torch.cat([enc["input_ids"], torch.tensor([wrong, wrong])], 1)
    batch = assemble_batch(tok, seq, enc["attention_mask"], enc["input_ids"].shape[1], 4)
    assert batch.texts == ["no", "no"]
    new = with_rows(tok, batch, {1: ok[0][1]}, 4)
    assert new.texts == ["no", right] and new.finished == [True, True]
    assert torch.equal(new.sequences[0], batch.sequences[0])
    assert int(new.completion_mask[1].sum()) == len(ok[0][1])  # the response and its EOS
