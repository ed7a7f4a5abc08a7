"""Process labels without human annotators: Monte-Carlo rollouts from every step prefix (Math-Shepherd, Wang et al.
2024), graded by the rule-based verifier.

For each problem the policy writes a few whole solutions. For each step of a solution, `rollouts` completions are
sampled from the prefix that ends with it and graded against the gold answer: the step's *soft* label is the
fraction that reach it (an estimate of the prefix's value), its *hard* label whether any does. A solution's last
step needs no rollouts: its label is the solution's own verdict. Every prefix of every problem goes to the engine in
one batched call per stage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

from model.vllm_engine import prompt_seed
from rewards.math_reward import grade_batch
from search.generator import StepGenerator, continue_many, split_steps

__all__ = ["LabelledSolution", "monte_carlo_labels"]

Grader = Callable[[list[str], list[str]], list[bool]]  # (solution texts, gold answers) -> verdicts


@dataclass
class LabelledSolution:
    """One sampled solution with a label per step.

    Attributes:
        problem_id: the problem's id.
        prompt: the problem's prompt as text (chat template applied), as a reward model reads it.
        gold: the gold answer.
        steps: the solution's steps, each keeping its delimiter ("".join(steps) is the solution).
        soft: per step, the fraction of rollouts from its prefix that reached the gold answer.
        hard: per step, whether any of them did.
        correct: the whole solution's verdict (an outcome reward model's label).
    """

    problem_id: str
    prompt: str
    gold: str
    steps: list[str]
    soft: list[float]
    hard: list[bool]
    correct: bool

    def to_dict(self) -> dict:
        return asdict(self)


def grade_with_rewards(texts: list[str], golds: list[str]) -> list[bool]:
    """The grader training pays with, run in the rewards worker pool (time- and memory-limited per text)."""
    return [verdict.correct for verdict in grade_batch(texts, golds)]


def monte_carlo_labels(generator: StepGenerator, prompts: Sequence[list[int]], problem_ids: Sequence[str],
                       golds: Sequence[str], *, solutions: int = 4, rollouts: int = 8, max_tokens: int = 96,
                       temperature: float = 1.0, seed: int = 0, grade: Grader = grade_with_rewards
                       ) -> list[LabelledSolution]:
    """Sample `solutions` solutions per problem and label each step by `rollouts` rollouts from its prefix.

    A solution cut off at max_tokens is kept and is wrong, whatever number it ends on (it gave no answer); leaving
    it out would teach a reward model that rambling never happens. A rollout cut off is wrong the same way.
    Rollouts continue a prefix re-tokenized step by step (`generator.encode` per step), as a reward model reads it.

    Returns:
        The labelled solutions, problem by problem.
    """
    if not len(prompts) == len(problem_ids) == len(golds):
        raise ValueError(f"{len(prompts)} prompts, {len(problem_ids)} ids and {len(golds)} gold answers")
    sampled = continue_many(generator, list(prompts), solutions, max_tokens=max_tokens, temperature=temperature,
                            stop=[], seeds=[prompt_seed(seed, i) for i in range(len(prompts))])
    drafts, finished = [], []  # (problem index, steps) of every solution; whether it ended before max_tokens
    for index, continuations in enumerate(sampled):
        for c in continuations:
            if c.text:
                drafts.append((index, split_steps(c.text)))
                finished.append(c.stop_reason != "length")
    graded = grade(["".join(steps) for _, steps in drafts], [golds[i] for i, _ in drafts])
    outcome = [ok and done for ok, done in zip(graded, finished)]
    # every step but the last: roll out from the prefix that ends with it
    prefixes, owners = [], []
    for d, (index, steps) in enumerate(drafts):
        ids = list(prompts[index])
        for s, step in enumerate(steps[:-1]):
            ids = ids + generator.encode(step)
            prefixes.append(ids)
            owners.append((d, s))
    rolled = continue_many(generator, prefixes, rollouts, max_tokens=max_tokens, temperature=temperature, stop=[],
                           seeds=[prompt_seed(seed + 1, i) for i in range(len(prefixes))])
    texts, golds_of_rollouts, rollout_finished = [], [], []
    for (d, s), continuations in zip(owners, rolled):
        index, steps = drafts[d]
        texts += ["".join(steps[:s + 1]) + c.text for c in continuations]
        golds_of_rollouts += [golds[index]] * len(continuations)
        rollout_finished += [c.stop_reason != "length" for c in continuations]
    verdicts = iter([ok and done for ok, done in zip(grade(texts, golds_of_rollouts), rollout_finished)])
    reached = {key: [next(verdicts) for _ in continuations] for key, continuations in zip(owners, rolled)}
    labelled = []
    for d, (index, steps) in enumerate(drafts):
        wins = [reached[(d, s)] for s in range(len(steps) - 1)] + [[outcome[d]]]
        labelled.append(LabelledSolution(
            problem_id=problem_ids[index], prompt=generator.decode(prompts[index]), gold=golds[index], steps=steps,
            soft=[sum(w) / len(w) for w in wins], hard=[any(w) for w in wins], correct=outcome[d]))
    return labelled
