"""An institution's own problems from a local JSONL or Parquet file, read through ``datasets``."""

from __future__ import annotations

import logging
from pathlib import Path

import datasets

from secure_fgrpo.tasks import FAMILIES, Problem

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("prompt", "answer", "kind")
_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


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
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; use .jsonl, .json or .parquet")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    ds = datasets.load_dataset(
        builder, data_files=str(path), split="train", cache_dir=None if cache_dir is None else str(cache_dir)
    )
    for column in REQUIRED_COLUMNS:
        if column not in ds.column_names:
            raise ValueError(f"{path}: missing required column {column!r} (found {ds.column_names})")
    problems = []
    for row_index, row in enumerate(ds.select_columns(list(REQUIRED_COLUMNS))):
        problems.append(_to_problem(path, row_index, row))
    logger.info("loaded %d problems from %s", len(problems), path)
    return problems


def _to_problem(path: Path, row_index: int, row: dict) -> Problem:
    where = f"{path}: row {row_index}"
    prompt, answer, kind = row["prompt"], row["answer"], row["kind"]
    if not isinstance(prompt, str) or not prompt:
        raise ValueError(f"{where}: column 'prompt' must be a non-empty string, got {prompt!r}")
    if kind not in FAMILIES:
        raise ValueError(
            f"{where}: column 'kind' has unknown kind {kind!r}; expected one of {sorted(FAMILIES)}"
        )
    if answer is None:
        raise ValueError(f"{where}: column 'answer' is empty")
    canonical = FAMILIES[kind].extract(str(answer))
    if canonical is None:
        raise ValueError(f"{where}: column 'answer' value {answer!r} is not a well-formed {kind!r} answer")
    return Problem(prompt=prompt, answer=canonical, family=kind)
