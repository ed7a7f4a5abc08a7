"""A user's own benchmark: a JSON Lines file of problems, read with errors that name the file, the line and the field."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterator

from model.config import ConfigError
from problems.problem import Problem


def jsonl_rows(path: str | Path, what: str, error: type[Exception]) -> Iterator[tuple[int, dict]]:
    """(line number, row) for each non-blank line of a JSON Lines file; `error` (with `what` naming the file's
    role, e.g. "predictions") for a missing file, a line that is not UTF-8 or not JSON, or a row that is not an
    object."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} file {path} does not exist" if not path.exists() else f"{what} path {path} is not a file")
    for line_number, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            raise error(f"{path}:{line_number}: not UTF-8 text (byte {raw[decode_error.start]:#04x} at column "
                        f"{decode_error.start + 1}); save the file as UTF-8") from None
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
        ConfigError: the file is missing or not JSON Lines, a row lacks the problem or answer field (the message
            names the file, the line and the fields the row has), or two rows share an id (predictions would land
            on the wrong problem).
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
    counts = Counter(problem.id for problem in problems)
    repeated = [problem_id for problem_id, count in counts.items() if count > 1]
    if repeated:
        raise ConfigError(f"benchmark file {path}: {len(repeated)} id{'s are' if len(repeated) > 1 else ' is'} used by more than one row "
                          f"({', '.join(map(repr, repeated[:5]))}{', ...' if len(repeated) > 5 else ''}); each "
                          f"problem needs its own id (or name another field with --id-field)")
    return problems
