"""Process rewards as search uses them: per-step scores of a solution, and value functions for `search.solve`.

Three scorers of the same shape, `(problem, steps) -> one score per step in [0, 1]`:
- `LearnedRewardModel`: a reward model folder (model/reward_model.py, trained by `reasonrl train-rm`);
- `step_checker_scores`: the sympy step checker (`rewards.check_steps`), no training: 0 for a step stating a false
  equation, 1 for one whose equations all hold, 0.5 for a step with nothing to check;
- `combined_scores`: the learned score, zeroed where the checker finds a false equation.

As a value function (search's ValueFn) a scorer's state value is its score after the last step written so far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from model import load_tokenizer
from model.reward_model import load_reward_model, score_steps
from rewards import check_steps, step_summary

__all__ = ["LearnedRewardModel", "step_checker_scores", "step_checker_value", "combined_scores", "CombinedValue",
           "value_function"]


class LearnedRewardModel:
    """A trained reward model, scoring in this process (a tiny model on CPU; batched)."""

    def __init__(self, folder: str | Path, device: str = "cpu", batch_size: int = 16):
        self.model = load_reward_model(folder, device)
        self.tokenizer = load_tokenizer(folder)
        self.batch_size = batch_size

    @property
    def kind(self) -> str:
        return self.model.kind

    def step_scores_many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[list[float]]:
        return score_steps(self.model, self.tokenizer, items, self.batch_size)

    def step_scores(self, problem: str, steps: Sequence[str]) -> list[float]:
        return self.step_scores_many([(problem, steps)])[0]

    def __call__(self, problem: str, steps: Sequence[str]) -> float:
        """The state's value: P(correct) after the last step (before any step: at the prompt's last token)."""
        return self.step_scores(problem, steps)[-1]

    def many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """Each (problem, steps) state's value, in batched forward passes."""
        return [scores[-1] for scores in self.step_scores_many(items)]


def step_checker_scores(problem: str, steps: Sequence[str]) -> list[float]:
    """Per step: 0 if it states an equation the sympy checker finds false, 1 if every equation it states holds,
    0.5 if it states none that can be checked. (The checker reads the whole text, so a variable set in an earlier
    step is known in a later one.)"""
    text = "".join(steps)
    starts, offset = [], 0
    for step in steps:
        starts.append(offset)
        offset += len(step)
    verdicts: list[list[str]] = [[] for _ in steps]
    for claim in check_steps(text):
        index = max(i for i, start in enumerate(starts) if start <= claim.span[0]) if steps else 0
        verdicts[index].append(claim.status)
    return [0.0 if "invalid" in v else 1.0 if "valid" in v else 0.5 for v in verdicts]


def step_checker_value(problem: str, steps: Sequence[str]) -> float:
    """The step checker as a value function: the fraction of the solution's checkable equations that hold (0.5
    where none can be checked)."""
    score = step_summary(check_steps("".join(steps)))["score"]
    return 0.5 if score is None else score


def combined_scores(learned: Sequence[float], checker: Sequence[float]) -> list[float]:
    """The learned score, 0 where the checker finds a false equation."""
    return [0.0 if check == 0.0 else score for score, check in zip(learned, checker, strict=True)]


def states_a_false_equation(problem: str, steps: Sequence[str]) -> bool:
    """Whether the checker finds a false equation in any step so far."""
    return bool(steps) and min(step_checker_scores(problem, steps)) == 0.0


class CombinedValue:
    """A learned reward model's value, 0 once the checker finds a false equation in any step so far."""

    def __init__(self, learned: LearnedRewardModel):
        self.learned = learned

    def __call__(self, problem: str, steps: Sequence[str]) -> float:
        if states_a_false_equation(problem, steps):
            return 0.0  # no reward-model call needed
        return self.learned(problem, steps)

    def many(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[float]:
        """Each state's value: the checker on each, then the learned model in one batch on those it passes."""
        values: list[float] = [0.0] * len(items)
        passed = [i for i, (problem, steps) in enumerate(items) if not states_a_false_equation(problem, steps)]
        for i, value in zip(passed, self.learned.many([items[i] for i in passed])):
            values[i] = value
        return values


def value_function(reward_model: str | Path | None, combine_with_checker: bool = False):
    """The value function a search runs with: a learned reward model's folder (alone, or zeroed by the step checker
    where it finds a false equation), else the sympy step checker."""
    if reward_model is None:
        return step_checker_value
    learned = LearnedRewardModel(reward_model)
    return CombinedValue(learned) if combine_with_checker else learned
