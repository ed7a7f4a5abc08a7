"""The `Problem` type every floor above shares, and the two helpers every generator uses to draw distinct
problems and hold out the first of them."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence


@dataclass
class Problem:
    """One problem with its gold answer.

    Attributes:
        id: unique within its source, e.g. "gsm8k-test-17", "syn-2-00041", "2024-I-1".
        question: the text shown to the policy.
        answer: the gold final answer as a string ("12", "\\frac{1}{2}").
        solution: a reference solution (for synthetic problems, the exact SFT target), or None.
        source: "synthetic", "gsm8k", "math500", "aime2024", "aime2025".
        level: difficulty (synthetic: number of operations; MATH: 1-5), or None.
        tests: a code problem's hidden tests (assert statements, the `code_execution` reward's format); None for
            math. A code problem's `answer` is a reference program (problems/synthetic_code.py).
        entry_point: the function a code problem asks for.
    """

    id: str
    question: str
    answer: str
    solution: str | None
    source: str
    level: int | None
    tests: str | None = None
    entry_point: str | None = None


def distinct_problems(make: Callable[[random.Random, int, int], Problem], n: int, seed: int, levels: Sequence[int],
                      what: str, max_draws: int) -> list[Problem]:
    """`n` problems `make(rng, level, index)` with distinct questions, levels round-robin, from one rng seeded
    with `seed` (the same list for the same seed); a repeated question is drawn again, `max_draws` at most."""
    if not levels:
        raise ValueError("levels must not be empty")
    rng = random.Random(seed)
    problems: list[Problem] = []
    seen: set[str] = set()
    draws = 0
    while len(problems) < n:
        draws += 1
        if draws > max_draws:
            raise ValueError(f"could not draw {n} distinct {what} for levels {list(levels)}")
        problem = make(rng, levels[len(problems) % len(levels)], len(problems))
        if problem.question not in seen:
            seen.add(problem.question)
            problems.append(problem)
    return problems


def held_out_first(problems: list[Problem], n_eval: int, prefix: str) -> tuple[list[Problem], list[Problem]]:
    """(training, held-out) from one de-duplicated stream whose first `n_eval` problems are held out (so the
    held-out set stays the same when the training size changes); ids become "<prefix>-eval-<level>-<i>" and
    "<prefix>-train-<level>-<i>"."""
    held_out, train = problems[:n_eval], problems[n_eval:]
    for i, problem in enumerate(held_out):
        problem.id = f"{prefix}-eval-{problem.level}-{i:05d}"
    for i, problem in enumerate(train):
        problem.id = f"{prefix}-train-{problem.level}-{i:05d}"
    return train, held_out


def to_hf_dataset(problems: Sequence[Problem]) -> Any:
    """A `datasets.Dataset` with columns id, prompt (conversational, as TRL expects), question, answer, solution,
    level, source: ready for `trl.GRPOTrainer(train_dataset=...)` with reward functions reading `answer`."""
    import datasets  # lazy: `datasets` takes seconds to import, and only this export needs it here

    rows = [{"prompt": [{"role": "user", "content": p.question}], **asdict(p)} for p in problems]
    return datasets.Dataset.from_list(rows)
