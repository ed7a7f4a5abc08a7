"""Seeded arithmetic beyond a tiny policy's head, where the Python tool pays (rollout.tools, rewards/tools.py).

Multi-digit products with sums and differences around them:

    level 1: What is 347 * 29?
    level 2: What is 347 * 29 + 1204?
    level 3: What is 347 * 29 - 58 * 61?

Each problem's reference solution (the SFT target) either calls the tool, its output written where the tool's
output goes (the observation the warm start does not train on), or works the arithmetic out line by line; a
seeded coin picks which (`tool_share`), so the warm-started policy has both habits and GRPO a choice to make:

    <think>                                  <think>
    ```python                                347 * 29 = 10063
    print(347 * 29 + 1204)                   10063 + 1204 = 11267
    ```                                      </think>
    ```output                                The answer is \\boxed{11267}.
    11267
    ```
    </think>
    The answer is \\boxed{11267}.
"""

from __future__ import annotations

import random
from functools import partial
from typing import Sequence

from problems.problem import Problem, distinct_problems, held_out_first
from rewards.tools import CALL_OPEN, CALL_STOP, OUTPUT_CLOSE, OUTPUT_OPEN

TOOL_SHARE = 0.5  # share of reference solutions that call the tool


def _product(rng: random.Random) -> tuple[int, int]:
    return rng.randint(100, 999), rng.randint(11, 99)


def tool_trace(expression: str, answer: int) -> str:
    """The reference solution that calls the tool on `expression` (its output written as the tool's would be)."""
    return ("<think>\n" + CALL_OPEN + f"print({expression})" + CALL_STOP + OUTPUT_OPEN + str(answer) + OUTPUT_CLOSE
            + "</think>\nThe answer is \\boxed{" + str(answer) + "}.")


def head_trace(lines: Sequence[str], answer: int) -> str:
    """The reference solution that works it out line by line."""
    return "<think>\n" + "\n".join(lines) + "\n</think>\nThe answer is \\boxed{" + str(answer) + "}."


def synthetic_tool_problem(rng: random.Random, level: int, index: int = 0, tool_share: float = TOOL_SHARE
                           ) -> Problem:
    """One problem of `level` (1: a product; 2: a product and a sum or difference; 3: a difference of products)."""
    if level not in (1, 2, 3):
        raise ValueError(f"synthetic_tools levels are 1, 2 and 3, got {level}")
    a, b = _product(rng)
    lines = [f"{a} * {b} = {a * b}"]
    expression, answer = f"{a} * {b}", a * b
    if level == 2:
        c = rng.randint(100, 9999)
        op = rng.choice("+-")
        answer = a * b + c if op == "+" else a * b - c
        expression = f"{a} * {b} {op} {c}"
        lines.append(f"{a * b} {op} {c} = {answer}")
    elif level == 3:
        c, d = rng.randint(11, 99), rng.randint(11, 99)
        answer = a * b - c * d
        expression = f"{a} * {b} - {c} * {d}"
        lines += [f"{c} * {d} = {c * d}", f"{a * b} - {c * d} = {answer}"]
    uses_tool = rng.random() < tool_share
    solution = tool_trace(expression, answer) if uses_tool else head_trace(lines, answer)
    return Problem(id=f"tool-{level}-{index:05d}", question=f"What is {expression}?", answer=str(answer),
                   solution=solution, source="synthetic_tools", level=level)


def synthetic_tool_problems(n: int, seed: int, levels: Sequence[int] = (1, 2, 3), tool_share: float = TOOL_SHARE
                            ) -> list[Problem]:
    """`n` distinct problems, levels round-robin; the same list for the same seed. `tool_share` changes which
    reference solutions call the tool, not the questions (each problem draws its coin either way)."""
    return distinct_problems(partial(synthetic_tool_problem, tool_share=tool_share), n, seed, levels,
                             "synthetic tool problems", max_draws=20 * n + 1000)


def split_synthetic_tools(n_train: int, n_eval: int, seed: int, levels: Sequence[int] = (1, 2, 3),
                          tool_share: float = TOOL_SHARE) -> tuple[list[Problem], list[Problem]]:
    """(training, held-out) problems with no question in both; the held-out ones are drawn first, so they do not
    depend on n_train."""
    return held_out_first(synthetic_tool_problems(n_eval + n_train, seed, levels, tool_share), n_eval, "tool")
