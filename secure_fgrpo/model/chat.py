"""Prompts as the model expects them. A chat model (one whose tokenizer has a chat template,
like SmolLM2-Instruct) was tuned on user/assistant turns: each prompt becomes one user turn
followed by the assistant cue, and the template writes its own special tokens. A model without
a template (the embedded one) reads the raw prompt with its tokenizer's usual special tokens."""

from __future__ import annotations

from transformers import BatchEncoding, PreTrainedTokenizerBase


def is_chat(tok: PreTrainedTokenizerBase) -> bool:
    return bool(getattr(tok, "chat_template", None))


def render_prompt(tok: PreTrainedTokenizerBase, prompt: str) -> str:
    """The text the model is conditioned on for ``prompt``."""
    if not is_chat(tok):
        return prompt
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                   add_generation_prompt=True)
    if not isinstance(text, str):  # tokenize=False always gives the text
        raise TypeError(f"the chat template gave {type(text).__name__}, not text")
    return text


def encode_prompts(tok: PreTrainedTokenizerBase, prompts: list[str]) -> BatchEncoding:
    """Padded token ids of ``prompts`` (the tokenizer's padding side), rendered for the model."""
    texts = [render_prompt(tok, p) for p in prompts]
    return tok(texts, return_tensors="pt", padding=True, add_special_tokens=not is_chat(tok))
