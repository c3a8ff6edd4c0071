"""The exported global adapter loads exactly as its README (and the project README) says —
AutoPeftModelForCausalLM + AutoTokenizer on the adapter folder — and gives the federation's own
log-probs and greedy answers; the base model's folder loads the obvious way too."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import small_run
from transformers import AutoTokenizer

from secure_fgrpo.config import config_from_dict
from secure_fgrpo.federation.runner import Federation
from secure_fgrpo.model.export import LOAD_SNIPPET
from secure_fgrpo.model.tokenizer import build_char_tokenizer
from secure_fgrpo.tasks import get_family

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def exported(quick_model_dir, tmp_path_factory) -> tuple[Federation, Path]:
    fed = Federation(config_from_dict(small_run(**{"federation.rounds": 1})), tmp_path_factory.mktemp("exp") / "run")
    fed.run()
    return fed, fed.run_dir / "server" / "global_adapter"


def _load_as_readme_says(adapter: Path) -> tuple[torch.nn.Module, object]:
    text = (adapter / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    scope: dict = {}
    exec(code, scope)
    return scope["model"], scope["tok"]


def _greedy(model, tok, prompts: list[str]) -> list[str]:
    batch = tok(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def test_adapter_loads_as_the_readme_says_and_matches_the_federation(exported) -> None:
    fed, adapter = exported
    base_path = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert base_path == str(Path(fed.model_path).resolve())
    assert json.loads((adapter / "base_model.json").read_text())["base_model_name_or_path"] == base_path
    model, tok = _load_as_readme_says(adapter)
    model.eval()
    problems = fed.data.global_eval
    prompts = [p.prompt for p in problems]
    assert tok(prompts[0])["input_ids"] == build_char_tokenizer()(prompts[0])["input_ids"]  # spaces kept
    batch = tok(prompts, return_tensors="pt", padding=True)
    ours = fed.tok(prompts, return_tensors="pt", padding=True)
    assert torch.equal(batch["input_ids"], ours["input_ids"])
    from secure_fgrpo.model.vector import load_vector

    load_vector(fed.model, fed.layout, fed.global_model.state.vector)
    with torch.no_grad():
        theirs = torch.log_softmax(model(**batch).logits, -1)
        mine = torch.log_softmax(fed.model(**ours).logits, -1)
    mask = batch["attention_mask"].bool()
    assert torch.allclose(theirs[mask], mine[mask], atol=1e-5)
    answers, expected = _greedy(model, tok, prompts), _greedy(fed.model, fed.tok, prompts)
    assert answers == expected

    def accuracy(texts: list[str]) -> float:
        return sum(get_family(p.family).correctness(p, get_family(p.family).extract(t), False)
                   for p, t in zip(problems, texts, strict=True)) / len(problems)

    assert accuracy(answers) == accuracy(expected)


def test_base_folder_loads_the_obvious_way(exported) -> None:
    """transformers 5 used to force Qwen2's byte-level tokenizer here, dropping every space."""
    fed, _ = exported
    tok = AutoTokenizer.from_pretrained(fed.model_path)
    text = "hr 112 >100?="
    assert tok(text)["input_ids"] == build_char_tokenizer()(text)["input_ids"]
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_project_readme_shows_the_same_loading_lines() -> None:
    """The README's lines are the ones the adapter's own README carries (and the test above runs)."""
    text = README.read_text()
    snippet = LOAD_SNIPPET.format(adapter="RUN/server/global_adapter")
    lines = [line.split("#")[0].rstrip() for line in snippet.splitlines()]
    assert len([line for line in lines if line]) == 4
    for line in lines:
        assert line in text
