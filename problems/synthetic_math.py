"""Seeded synthetic arithmetic: the embedded default's curriculum.

Templated, small-vocabulary word problems whose reference solutions use exactly the format the SFT warm start
teaches and the rewards parse:

    <think>
    7 + 5 = 12
    </think>
    The answer is \\boxed{12}.

`reference_step_correct` judges a solution's steps against the reference: the gold process labels reward models
are measured on.
"""

from __future__ import annotations

import random
from typing import Sequence

from problems.problem import Problem, distinct_problems, held_out_first
from rewards.extract import find_last_boxed


NAMES = [("Tom", "he", "him"), ("Anna", "she", "her"), ("Ben", "he", "him"), ("Lily", "she", "her"),
         ("Sam", "he", "him"), ("Mia", "she", "her"), ("Max", "he", "him"), ("Emma", "she", "her")]
OBJECTS = ["apples", "books", "coins", "stickers", "pencils", "cards", "marbles", "cookies"]
# One sentence per operation; {p} is the subject pronoun, {o} the object pronoun, {f} a friend, {n} the operand.
ADD = ["{P} buys {n} more.", "{P} finds {n} more.", "{F} gives {o} {n} more."]
SUB = ["{P} gives {n} to {f}.", "{P} loses {n}.", "{P} sells {n}."]
MUL = ["Then {p} has {n} times as many.", "After that {p} has {n} times as many."]
QUESTIONS = ["How many {obj} does {name} have now?", "How many {obj} does {p} have now?"]
# Per level: operand bound for + and -, largest multiplier, and a cap that keeps running totals small.
LIMITS = {1: (20, 9, 100), 2: (50, 4, 200), 3: (50, 3, 300)}


def _operation(rng: random.Random, total: int, level: int) -> tuple[str, int]:
    """Pick an operation that keeps the running total a non-negative integer no larger than the level's cap."""
    bound, max_mul, cap = LIMITS[min(level, 3)]
    choices = [op for op, ok in (("+", total < cap), ("-", total > 0), ("*", 1 <= total and total * 2 <= cap)) if ok]
    op = rng.choice(choices)
    if op == "+":
        return op, rng.randint(1, min(bound - 1, cap - total))
    if op == "-":
        return op, rng.randint(1, min(total, bound - 1))
    return op, rng.randint(2, min(max_mul, cap // total))


def _apply(total: int, op: str, n: int) -> int:
    return total + n if op == "+" else total - n if op == "-" else total * n


def synthetic_problem(rng: random.Random, level: int, index: int = 0) -> Problem:
    """One word problem of `level` operations, its gold answer, and a one-line-per-operation reference solution.

    Two openings: "Tom has 7 apples." followed by `level` operation sentences, or (when the level allows a
    product) "Tom buys 3 bags of apples. Each bag has 4 apples." which is itself the first operation.
    """
    if level < 1:
        raise ValueError(f"synthetic levels start at 1, got {level}")
    bound, max_mul, cap = LIMITS[min(level, 3)]
    name, pronoun, obj_pronoun = rng.choice(NAMES)
    friend = rng.choice([n for n, _, _ in NAMES if n != name])
    obj = rng.choice(OBJECTS)
    fill = dict(p=pronoun, P=pronoun.capitalize(), o=obj_pronoun, f=friend, F=friend)
    sentences, lines = [], []
    if rng.random() < 0.3:
        bags = rng.randint(2, max_mul)
        per_bag = rng.randint(2, min(bound - 1, 12, cap // bags))
        sentences.append(f"{name} buys {bags} bags of {obj}. Each bag has {per_bag} {obj}.")
        total = bags * per_bag
        lines.append(f"{bags} * {per_bag} = {total}")
    else:
        total = rng.randint(1, bound - 1)
        sentences.append(f"{name} has {total} {obj}.")
    while len(lines) < level:
        op, n = _operation(rng, total, level)
        template = rng.choice(ADD if op == "+" else SUB if op == "-" else MUL)
        sentences.append(template.format(n=n, **fill))
        result = _apply(total, op, n)
        lines.append(f"{total} {op} {n} = {result}")
        total = result
    sentences.append(rng.choice(QUESTIONS).format(obj=obj, name=name, p=pronoun))
    solution = "<think>\n" + "\n".join(lines) + "\n</think>\nThe answer is \\boxed{" + str(total) + "}."
    return Problem(id=f"syn-{level}-{index:05d}", question=" ".join(sentences), answer=str(total),
                   solution=solution, source="synthetic", level=level)


def synthetic_problems(n: int, seed: int, levels: Sequence[int] = (1, 2, 3)) -> list[Problem]:
    """`n` distinct synthetic problems, levels taken round-robin from `levels`; the same list for the same seed.

    Raises:
        ValueError: for an empty `levels`, a level < 1, or an `n` the templates cannot fill with distinct questions.
    """
    return distinct_problems(synthetic_problem, n, seed, levels, "synthetic problems", max_draws=20 * n + 1000)


def split_synthetic(n_train: int, n_eval: int, seed: int, levels: Sequence[int] = (1, 2, 3),
                    ) -> tuple[list[Problem], list[Problem]]:
    """Training and held-out problems with disjoint question texts (drawn from one de-duplicated stream).

    Evaluation problems come first in the stream, so the held-out set stays the same when `n_train` changes.
    """
    return held_out_first(synthetic_problems(n_eval + n_train, seed, levels), n_eval, "syn")


def reference_step_correct(problem: Problem, steps: Sequence[str]) -> list[bool]:
    """Which steps of a solution to a synthetic problem are right, judged against its reference solution (the gold
    process labels reward models are measured on; independent of the sympy checker, which sees arithmetic only).

    Equation line k ("45 * 2 = 90") is right when it is the reference's equation k, up to spaces: the right operation
    on the right numbers with the right result. The answer step (the one with \\boxed) is right when its answer is the
    gold. Other steps ("<think>", "</think>", blank) are right.
    """
    think = (problem.solution or "").partition("<think>")[2].partition("</think>")[0]
    reference = [line.replace(" ", "") for line in think.splitlines() if "=" in line]
    correct, equations = [], 0
    for step in steps:
        text = step.strip()
        if "\\boxed" in text:
            correct.append(find_last_boxed(text) == problem.answer)
        elif "=" in text:
            correct.append(equations < len(reference) and text.replace(" ", "") == reference[equations])
            equations += 1
        else:
            correct.append(True)
    return correct
