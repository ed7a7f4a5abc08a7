"""Reading generations made elsewhere (another system, or an earlier run's samples.jsonl) to grade them.

A predictions file is JSON Lines. Each row names its problem by id or by problem text and holds one output or a
list of them; a problem may span several rows (their outputs are concatenated in file order). Field names:

    id       "id", "problem_id", "unique_id"                 (or --id-field)
    problem  "problem", "question", "prompt"                 (or --problem-field; used when no id matches)
    outputs  "outputs", "output", "completions", "completion", "responses", "response", "generations",
             "generation"                                   (or --output-field; a string or a list of strings)

Our own samples.jsonl (id, problem, outputs) reads as it is, so a run can be re-graded after the grader improves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from problems.custom import jsonl_rows

ID_FIELDS = ("id", "problem_id", "unique_id")
PROBLEM_FIELDS = ("problem", "question", "prompt")
OUTPUT_FIELDS = ("outputs", "output", "completions", "completion", "responses", "response", "generations",
                 "generation")


class PredictionsError(ValueError):
    """A predictions file that cannot be graded, with the file, line and field named."""


def normalise_text(text: str) -> str:
    """Problem text compared without case or whitespace differences."""
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def _pick(row: dict, chosen: str | None, candidates: Sequence[str]) -> str | None:
    if chosen is not None:
        return chosen if chosen in row else None
    return next((name for name in candidates if name in row), None)


def _outputs(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict) and "content" in value:  # a chat message
        return [str(value["content"])]
    if isinstance(value, list) and all(isinstance(v, (str, dict)) for v in value):
        return [v if isinstance(v, str) else str(v.get("content", "")) for v in value]
    raise PredictionsError(f"{where}: outputs must be a string or a list of strings, got {type(value).__name__}")


def read_predictions(path: str | Path, problems: Sequence[Any], *, id_field: str | None = None,
                     problem_field: str | None = None, output_field: str | None = None,
                     benchmark: str | None = None) -> tuple[list[Any], list[list[str]], dict[str, Any]]:
    """Match a predictions file's rows to `problems` (objects with id and question) by id, else by problem text.
    With `benchmark` given, rows whose "benchmark" field names another benchmark are skipped (a samples.jsonl of
    several benchmarks).

    Returns:
        (the problems that have outputs, in benchmark order; their outputs; a report: rows read, problems matched,
        the benchmark's problems without outputs, and the rows that matched no problem).

    Raises:
        PredictionsError: the file is missing or not JSON Lines, a row has no outputs field or neither an id nor a
            problem field, or no row matches any problem of the benchmark.
    """
    path = Path(path)
    by_id = {str(p.id): i for i, p in enumerate(problems)}
    by_text = {normalise_text(p.question): i for i, p in enumerate(problems)}
    outputs: dict[int, list[str]] = {}
    unmatched, rows = [], 0
    for line_number, row in jsonl_rows(path, "predictions", PredictionsError):
        where = f"{path}:{line_number}"
        if benchmark is not None and row.get("benchmark", benchmark) != benchmark:
            continue
        rows += 1
        out_name = _pick(row, output_field, OUTPUT_FIELDS)
        if out_name is None:
            raise PredictionsError(f"{where}: no outputs field ({output_field!r})" if output_field else
                                   f"{where}: no outputs field; looked for {', '.join(OUTPUT_FIELDS)} "
                                   "(name another with --output-field)")
        id_name, text_name = _pick(row, id_field, ID_FIELDS), _pick(row, problem_field, PROBLEM_FIELDS)
        if id_name is None and text_name is None:
            raise PredictionsError(f"{where}: neither an id field ({', '.join((id_field,) if id_field else ID_FIELDS)})"
                                   f" nor a problem field ({', '.join((problem_field,) if problem_field else PROBLEM_FIELDS)})")
        index = by_id.get(str(row[id_name])) if id_name is not None else None
        if index is None and text_name is not None and isinstance(row[text_name], str):
            index = by_text.get(normalise_text(row[text_name]))
        if index is None:
            unmatched.append(str(row.get(id_name) if id_name else row[text_name])[:80])
            continue
        outputs.setdefault(index, []).extend(_outputs(row[out_name], where))
    if not outputs:
        raise PredictionsError(f"{path}: none of its {rows} rows matches a problem of the benchmark by id or by "
                               f"problem text (first unmatched: {unmatched[:3]})")
    matched = sorted(i for i in outputs if outputs[i])  # a row with an empty list of outputs gives its problem none
    if not matched:
        raise PredictionsError(f"{path}: the rows that match a problem of the benchmark hold no outputs (empty lists)")
    report = {"file": str(path), "rows": rows, "problems_matched": len(matched),
              "problems_without_outputs": [str(problems[i].id) for i in range(len(problems)) if not outputs.get(i)],
              "rows_unmatched": len(unmatched), "unmatched_examples": unmatched[:5]}
    return [problems[i] for i in matched], [outputs[i] for i in matched], report
