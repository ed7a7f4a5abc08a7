"""A user's own benchmark: a JSON Lines file of problems, read with errors that name the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from model.config import ConfigError
from problems.problem import Problem


def jsonl_rows(path: str | Path, what: str, error: type[Exception]) -> Iterator[tuple[int, dict]]:
    """(line number, row) for each non-blank line of a JSON Lines file; `error` (with `what` naming the file's
    role, e.g. "predictions") for a missing file, a line that is not JSON or a row that is not an object."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} file {path} does not exist" if not path.exists() else f"{what} path {path} is not a file")
    for line_number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as decode_error:
            raise error(f"{path}:{line_number}: not JSON ({decode_error.msg})") from None
        if not isinstance(row, dict):
            raise error(f"{path}:{line_number}: each line must be a JSON object, got {type(row).__name__}")
        yield line_number, row


def load_custom(path: str | Path, *, problem_field: str = "problem", answer_field: str = "answer",
                id_field: str | None = "id") -> list[Problem]:
    """A user's benchmark: a JSON Lines file with one problem per row, its fields named by the arguments (a row
    without the id field gets "<file stem>-<line>"). The source is the file's stem.

    Raises:
        ConfigError: the file is missing or not JSON Lines, or a row lacks the problem or answer field (the message
            names the file, the line and the fields the row has).
    """
    path = Path(path)
    problems = []
    for number, row in jsonl_rows(path, "benchmark", ConfigError):
        for name, option in ((problem_field, "--problem-field"), (answer_field, "--answer-field")):
            if name not in row:
                raise ConfigError(f"{path}:{number}: no field {name!r} (the row has {', '.join(row)}; name the "
                                  f"field with {option})")
        problem_id = row.get(id_field) if id_field else None
        problems.append(Problem(id=str(problem_id) if problem_id is not None else f"{path.stem}-{number}",
                                question=str(row[problem_field]), answer=str(row[answer_field]),
                                solution=row.get("solution"), source=path.stem, level=None))
    if not problems:
        raise ConfigError(f"benchmark file {path} holds no problems")
    return problems
