"""An institution's own problems from a local JSONL or Parquet file, read through ``datasets``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import datasets
import pyarrow as pa
from datasets.exceptions import DatasetGenerationError

from secure_fgrpo.errors import DataFileError
from secure_fgrpo.tasks import FAMILIES, Problem

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("prompt", "answer", "kind")
_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
# Far above any prompt a model's context holds, far below what exhausts a worker's memory (a
# 200 MB line was accepted once and the worker was OOM-killed in the middle of a round).
MAX_ROW_BYTES = 1 << 20
MAX_PROMPT_CHARS = 1 << 16


def load_problems(path: str | Path, cache_dir: str | Path | None = None) -> list[Problem]:
    """Rows with ``prompt``, ``answer`` and ``kind`` as Problems with canonical answers.

    ``kind`` is a family name (``unit``, ``vitals``, ``dose``, ``choice``) or a generic kind
    (``numeric``, ``yesno``, ``choice``); it selects the extractor and the reward. Each answer
    is normalised by its family's extractor (``"0.50"`` -> ``"0.5"``) so that scoring is a
    string comparison. ``cache_dir`` is passed to ``datasets`` (its default cache otherwise).
    """
    path = Path(path)
    builder = _BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise DataFileError(f"{path}: unsupported file type {path.suffix!r}; use .jsonl, .json or .parquet")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix.lower() == ".jsonl":
        _check_jsonl(path)
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a "Generating train split" bar per file per run drowns a log
    try:
        ds = datasets.load_dataset(
            builder, data_files=str(path), split="train", cache_dir=None if cache_dir is None else str(cache_dir)
        )
    except (DatasetGenerationError, pa.ArrowException, StopIteration, ValueError) as err:
        cause = err.__cause__ or err
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:200]
        raise DataFileError(f"{path}: cannot be read as {path.suffix.lower()[1:]} ({first})") from None
    finally:
        if bars:
            datasets.enable_progress_bars()
    if len(ds) == 0:
        raise DataFileError(f"{path}: has no rows")
    for column in REQUIRED_COLUMNS:
        if column not in ds.column_names:
            raise DataFileError(f"{path}: missing required column {column!r} (found {ds.column_names})")
    problems = []
    for row_index, row in enumerate(ds.select_columns(list(REQUIRED_COLUMNS))):
        problems.append(_to_problem(path, row_index, row))
    logger.info("loaded %d problems from %s", len(problems), path)
    return problems


def _check_jsonl(path: Path) -> None:
    """One JSON object per line, each under MAX_ROW_BYTES, at least one: refused with the line
    number before ``datasets`` reads it (it would report a bare StopIteration or a generation
    error, and would read a row of any size)."""
    rows = 0
    with path.open("rb") as fh:
        for number in range(1, 1 << 62):
            line = fh.readline(MAX_ROW_BYTES + 1)
            if not line:
                break
            if len(line) > MAX_ROW_BYTES:
                raise DataFileError(f"{path}: line {number} is over {MAX_ROW_BYTES // (1 << 20)} MiB; rows are "
                                    f"capped at {MAX_ROW_BYTES} bytes")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise DataFileError(f"{path}: line {number} is not JSON ({err})") from None
            if not isinstance(row, dict):
                raise DataFileError(f"{path}: line {number} is not a JSON object with prompt, answer, kind")
            rows += 1
    if rows == 0:
        raise DataFileError(f"{path}: is empty (no rows); expected JSON lines with prompt, answer, kind")


def _to_problem(path: Path, row_index: int, row: dict) -> Problem:
    where = f"{path}: row {row_index}"
    prompt, answer, kind = row["prompt"], row["answer"], row["kind"]
    if not isinstance(prompt, str) or not prompt:
        raise DataFileError(f"{where}: column 'prompt' must be a non-empty string, got {prompt!r}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise DataFileError(f"{where}: column 'prompt' has {len(prompt)} characters; prompts are capped at "
                            f"{MAX_PROMPT_CHARS}")
    if kind not in FAMILIES:
        raise DataFileError(
            f"{where}: column 'kind' has unknown kind {kind!r}; expected one of {sorted(FAMILIES)}"
        )
    if answer is None:
        raise DataFileError(f"{where}: column 'answer' is empty")
    if len(str(answer)) > MAX_PROMPT_CHARS:
        raise DataFileError(f"{where}: column 'answer' has {len(str(answer))} characters; capped at {MAX_PROMPT_CHARS}")
    canonical = FAMILIES[kind].extract(str(answer))
    if canonical is None:
        raise DataFileError(f"{where}: column 'answer' value {answer!r} is not a well-formed {kind!r} answer")
    return Problem(prompt=prompt, answer=canonical, family=kind)
