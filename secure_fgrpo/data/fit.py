"""Does an institution's data fit the model? Checked once, when the data is loaded: a character
the tokenizer maps to its unknown token, or a prompt that leaves no room in the model's context
for the completion, would otherwise be trained on silently (as ``<unk>``, or truncated)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import DataFileError
from ..tasks import Problem

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase as Tokenizer


def check_fits(problems: Sequence[Problem], tok: Tokenizer, context: int | None, max_new_tokens: int,
               source: str) -> None:
    """Raise a DataFileError naming ``source`` and the first offending prompt for unknown
    characters or a prompt too long for ``context`` tokens."""
    for p in problems:
        row = f"the row with prompt {_short(p.prompt)}"
        ids = tok(p.prompt)["input_ids"]
        for field, text, found in (("prompt", p.prompt, ids), ("answer", p.answer, tok(p.answer)["input_ids"])):
            unknown = _unknown_chars(tok, text, found)
            if unknown:
                raise DataFileError(f"{source}: {row}: its {field} has characters outside the model's vocabulary: "
                                    f"{''.join(unknown)!r} (the embedded model reads lower-case letters, digits "
                                    "and ' .,:;?=<>+-*/()%')")
        if context is not None and len(ids) + max_new_tokens > context:
            raise DataFileError(f"{source}: {row}: the prompt is {len(ids)} tokens; with {max_new_tokens} tokens "
                                f"to generate it exceeds the model's context of {context} tokens "
                                f"(at most {context - max_new_tokens} prompt tokens)")


def _unknown_chars(tok: Tokenizer, text: str, ids: list[int]) -> list[str]:
    """The characters of ``text`` that tokenize to the unknown token (in order, once each)."""
    unk = tok.unk_token_id
    if unk is None or unk not in ids:
        return []
    out: list[str] = []
    for ch in dict.fromkeys(text):
        if unk in tok(ch)["input_ids"]:
            out.append(ch)
    return out or ["?"]


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")
