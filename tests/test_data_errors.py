"""An institution's data file that cannot be trained on is refused when it is loaded, in one
line naming the file (and the line or row), never with a library's traceback (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secure_fgrpo.data import load_problems
from secure_fgrpo.data.fit import check_fits
from secure_fgrpo.data.local import MAX_PROMPT_CHARS, MAX_ROW_BYTES
from secure_fgrpo.errors import DataFileError
from secure_fgrpo.model.tokenizer import build_char_tokenizer
from secure_fgrpo.tasks import Problem

GOOD = {"prompt": "pulse 120, over 100?=", "answer": "yes", "kind": "yesno"}


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("lines, message", [
    ([], "is empty (no rows)"),  # was: StopIteration
    (["", "   "], "is empty (no rows)"),
    (["this is not json"], "line 1 is not JSON"),  # was: DatasetGenerationError
    ([json.dumps(GOOD), '{"prompt": "x", "answer": '], "line 2 is not JSON"),
    (["[1, 2]"], "line 1 is not a JSON object"),
])
def test_unreadable_jsonl_is_one_line(tmp_path, lines, message) -> None:
    path = _jsonl(tmp_path / "h.jsonl", lines)
    with pytest.raises(DataFileError) as err:
        load_problems(path, cache_dir=tmp_path / "cache")
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_json_file_that_is_not_json(tmp_path) -> None:
    path = tmp_path / "h.json"
    path.write_text("{not json at all")
    with pytest.raises(DataFileError, match=r"h\.json: cannot be read as json"):
        load_problems(path, cache_dir=tmp_path / "cache")


def test_oversized_row_and_prompt_are_refused(tmp_path) -> None:
    big = dict(GOOD, prompt="a" * (MAX_ROW_BYTES + 10))  # was: accepted, then a worker OOM-killed
    path = _jsonl(tmp_path / "big.jsonl", [json.dumps(GOOD), json.dumps(big)])
    with pytest.raises(DataFileError, match=r"big\.jsonl: line 2 is over 1 MiB"):
        load_problems(path, cache_dir=tmp_path / "cache")
    long = dict(GOOD, prompt="a" * (MAX_PROMPT_CHARS + 1))  # under the row cap, over the prompt cap
    path = _jsonl(tmp_path / "long.jsonl", [json.dumps(long)])
    with pytest.raises(DataFileError, match=r"long\.jsonl: row 0: column 'prompt' has 65537 characters"):
        load_problems(path, cache_dir=tmp_path / "cache")


def test_good_file_still_loads(tmp_path) -> None:
    path = _jsonl(tmp_path / "ok.jsonl", [json.dumps(GOOD), "", json.dumps(dict(GOOD, answer="no"))])
    assert [p.answer for p in load_problems(path, cache_dir=tmp_path / "cache")] == ["yes", "no"]


def test_characters_outside_the_vocabulary_and_too_long_prompts() -> None:
    tok = build_char_tokenizer()
    ok = Problem("pulse 120, over 100?=", "yes", "yesno")
    check_fits([ok], tok, 64, 8, "clients.a.data (a.jsonl)")  # fits: no error
    with pytest.raises(DataFileError) as err:
        check_fits([ok, Problem("Pulse 120 über 100?=", "yes", "yesno")], tok, 64, 8, "clients.a.data (a.jsonl)")
    msg = str(err.value)
    assert msg.startswith("clients.a.data (a.jsonl): the row with prompt 'Pulse 120") and "'Pü'" in msg
    with pytest.raises(DataFileError, match="its answer has characters outside"):
        check_fits([Problem("dose?=", "YES", "yesno")], tok, 64, 8, "x")
    long = Problem("a" * 56 + "=", "1", "numeric")  # 1 BOS + 57 chars + 8 to generate > 64
    with pytest.raises(DataFileError, match="the prompt is 58 tokens; with 8 tokens to generate it exceeds "
                                            "the model's context of 64 tokens"):
        check_fits([long], tok, 64, 8, "x")
    check_fits([Problem("a" * 54 + "=", "1", "numeric")], tok, 64, 8, "x")  # 56 + 8 = 64: fits
