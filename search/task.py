"""The task a search solves, apart from the search: how a step ends, which step ends a solution, how an answer is read
from a finished solution and what votes compare, and what values and checks a solution.

The algorithms (search/mcts.py, gumbel.py, path_expansion.py, baselines.py) know nothing of math. They reach the task
through the `SearchContext` (search/context.py), which is also the one caller of the task's value function and
verifier, so that every token a reward model reads is counted. `MathTask` is the task our policies are trained on; a
new task (code, a tool call per step) is another class with the same attributes, passed to `search.solve(task=...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from rewards.extract import find_last_boxed, normalize_answer
from rewards.math_answer import grade_answer, parse_number
from search.generator import STEP_DELIMITER

__all__ = ["ValueFn", "Verifier", "Task", "MathTask", "verifier_for", "require"]

ValueFn = Callable[[str, list[str]], float]  # (problem, steps so far, maybe none) -> estimated P(correct) in [0, 1]
Verifier = Callable[[str], bool]  # a whole solution's text -> is its answer correct (the gold is bound inside)

# What an algorithm may need from a task beyond its rules, and how an error names it.
NEEDS = {"value_fn": "a value_fn (a reward model)", "verifier": "a verifier (or the gold answer)"}


class Task(Protocol):
    """What a search asks of the problem it solves.

    Attributes:
        step_end: the string that ends a reasoning step; a sampled step keeps it at its end.
        value_fn: (problem, steps) -> [0, 1], a PRM on a partial solution or an ORM on a finished one; None where the
            search needs none.
        verifier: a finished solution's text -> whether it is correct; None where there is no gold.
    """

    step_end: str
    value_fn: ValueFn | None
    verifier: Verifier | None

    def is_terminal(self, step: str, stop_reason: str) -> bool:
        """Whether the step (stopped for `stop_reason`: "step", "eos" or "length") ends the solution."""
        ...

    def answer(self, solution: str) -> str | None:
        """The answer a finished solution gives, or None when it gives none."""
        ...

    def vote_key(self, answer: str) -> str:
        """What votes compare: two answers with the same key are one answer."""
        ...


@dataclass(frozen=True)
class MathTask:
    """A math problem solved one line per step and answered in the last `\\boxed{}`.

    Attributes:
        value_fn: the process or outcome scorer (search/reward_models.py), or None.
        verifier: checks a finished solution (`verifier_for(gold)`: the grader training pays with), or None.
        step_end: the step delimiter our policies write (one step per line).
    """

    value_fn: ValueFn | None = None
    verifier: Verifier | None = None
    step_end: str = STEP_DELIMITER

    def is_terminal(self, step: str, stop_reason: str) -> bool:
        """A step ends a solution when it states a boxed answer or the text ended (eos, or a runaway step cut at
        max_tokens: continuing it would only make one longer step)."""
        return stop_reason != "step" or find_last_boxed(step) is not None

    def answer(self, solution: str) -> str | None:
        """The solution's last `\\boxed{}` (None: it boxed nothing, or only an empty box)."""
        return find_last_boxed(solution)

    def vote_key(self, answer: str) -> str:
        """The normalised answer, and a plain number as its exact value ("9.0" and "9" vote together): the form
        evals' maj@n votes with."""
        normalized = normalize_answer(answer)
        number = parse_number(normalized)
        return str(number[0]) if number else normalized


def verifier_for(gold: object) -> Verifier:
    """A verifier from the gold answer, with the grader training pays with. It calls math-verify in this process,
    which needs the main thread (docs/ARCHITECTURE.md); from threads or actors, grade through rewards' pool."""
    return lambda text: grade_answer(text, gold).correct


def require(task: Task, needs: Iterable[str], who: str) -> None:
    """Raise ValueError naming what `who` needs (a key of NEEDS) and the task lacks."""
    for need in needs:
        if getattr(task, need) is None:
            raise ValueError(f"{who} needs {NEEDS[need]}")
