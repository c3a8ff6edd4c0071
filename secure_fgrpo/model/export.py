"""Write the global adapter so that it loads the obvious way, with nothing else to know:
peft's files, the base model's tokenizer next to them, the base model's location in
``adapter_config.json`` and a short README/``base_model.json`` saying how to load it.

Why the tokenizer travels with the adapter: the embedded model's character tokenizer is not
any hub tokenizer; a loader that guesses one from the base's architecture would silently
mis-tokenise every prompt (see model/tiny.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from peft import PeftModel
from transformers import PreTrainedTokenizerBase

LOAD_SNIPPET = """from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer

model = AutoPeftModelForCausalLM.from_pretrained("{adapter}")  # loads the base named in adapter_config.json
tok = AutoTokenizer.from_pretrained("{adapter}")  # the base model's own tokenizer, saved here
"""


def save_adapter(model: PeftModel, tok: PreTrainedTokenizerBase, out: Path, base_path: str, base_note: str) -> Path:
    """``model``'s adapter, ``tok`` and the loading notes under ``out``; ``base_path`` is where
    the base model lives (recorded in adapter_config.json), ``base_note`` how it was obtained."""
    for cfg in model.peft_config.values():
        cfg.base_model_name_or_path = base_path
    model.save_pretrained(str(out))
    tok.save_pretrained(out)
    (out / "base_model.json").write_text(json.dumps(
        {"base_model_name_or_path": base_path, "how_obtained": base_note, "tokenizer": "saved in this folder"},
        indent=1) + "\n")
    (out / "README.md").write_text(
        "# Global adapter (secure_fgrpo)\n\n"
        f"A LoRA adapter in peft's format for the base model at `{base_path}` ({base_note}).\n"
        "The base model's tokenizer is saved here too; load both like this:\n\n"
        "```python\n" + LOAD_SNIPPET.format(adapter=out.resolve()) + "```\n"
    )
    return out
