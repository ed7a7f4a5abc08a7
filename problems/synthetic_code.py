"""Programming problems: a seeded synthetic task the tiny policy can learn on a CPU.

A code problem is a `problems.Problem` whose `tests` hold assert statements (the `code_execution` reward's format)
and whose `entry_point` names the function to write; its `answer` is a reference program.

The synthetic task: write `solve(x)` for a one-argument function described in words, with two input/output
examples in the question and five hidden asserts. The function chains `level` operations, each turning an int, a
string or a list of ints into one of those (`sum(xs)`, `s[::-1]`, `n * 3`, ...), so level 1 is one operation and
level 3 composes three. The reference solution plans the chain inside <think> (one operation per line) and gives
the function in a ```python block.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from problems.problem import Problem, distinct_problems, held_out_first

ENTRY_POINT = "solve"

# (input type, output type, what it does in words, the expression with {e} for the input, the constant's range)
# {k} is a small constant drawn per problem. Types: "int", "str", "list" (of ints).
OPERATIONS: list[tuple[str, str, str, str, tuple[int, int]]] = [
    ("int", "int", "add {k}", "{e} + {k}", (1, 9)),
    ("int", "int", "subtract {k}", "{e} - {k}", (1, 9)),
    ("int", "int", "multiply by {k}", "{e} * {k}", (2, 5)),
    ("int", "int", "take the remainder when divided by {k}", "{e} % {k}", (2, 9)),
    ("int", "str", "write it as a string", "str({e})", (0, 0)),
    ("str", "str", "reverse it", "{e}[::-1]", (0, 0)),
    ("str", "str", "make it upper case", "{e}.upper()", (0, 0)),
    ("str", "str", "keep its first {k} characters", "{e}[:{k}]", (1, 4)),
    ("str", "str", "drop its first {k} characters", "{e}[{k}:]", (1, 3)),
    ("str", "str", "repeat it {k} times", "{e} * {k}", (2, 3)),
    ("str", "int", "count its characters", "len({e})", (0, 0)),
    ("list", "int", "sum it", "sum({e})", (0, 0)),
    ("list", "int", "take its largest element", "max({e})", (0, 0)),
    ("list", "int", "take its smallest element", "min({e})", (0, 0)),
    ("list", "int", "count its elements", "len({e})", (0, 0)),
    ("list", "list", "sort it", "sorted({e})", (0, 0)),
    ("list", "list", "reverse it", "{e}[::-1]", (0, 0)),
    ("list", "list", "multiply each element by {k}", "[x * {k} for x in {e}]", (2, 4)),
    ("list", "list", "keep its first {k} elements", "{e}[:{k}]", (1, 3)),
]
ARGUMENTS = {"int": ("n", "an integer n"), "str": ("s", "a string s"),
             "list": ("xs", "a non-empty list of integers xs")}
WORDS = ["cat", "apple", "river", "stone", "moon", "tree", "book", "lamp", "cloud", "bird", "sand", "fire"]


def random_input(rng: random.Random, kind: str) -> Any:
    if kind == "int":
        return rng.randint(0, 30)
    if kind == "str":
        return rng.choice(WORDS)
    return [rng.randint(0, 9) for _ in range(rng.randint(2, 5))]


def synthetic_code_problem(rng: random.Random, level: int, index: int = 0) -> Problem:
    """One problem of `level` chained operations (see the module docstring)."""
    if level < 1:
        raise ValueError(f"synthetic code levels start at 1, got {level}")
    kind = rng.choice(list(ARGUMENTS))
    argument, described = ARGUMENTS[kind]
    expression, steps, current = argument, [], kind
    for _ in range(level):
        # an operation on what the chain holds now (ending in a type some operation can continue from)
        op_in, op_out, words, template, (low, high) = rng.choice([op for op in OPERATIONS if op[0] == current])
        k = rng.randint(low, high) if high else 0
        wrapped = template.startswith("{e}") and " " in expression  # "(n + 3) * 2", but "sum(xs)", "str(n + 3)"
        expression = template.format(e=f"({expression})" if wrapped else expression, k=k)
        steps.append(words.format(k=k))
        current = op_out
    function = eval(f"lambda {argument}: {expression}")  # noqa: S307 (our own templates, never user text)
    inputs = []
    while len(inputs) < 7:  # 2 shown, 5 hidden, all distinct
        value = random_input(rng, kind)
        if value not in inputs:
            inputs.append(value)
    shown, hidden = inputs[:2], inputs[2:]
    examples = "; ".join(f"{ENTRY_POINT}({value!r}) == {function(value)!r}" for value in shown)
    question = (f"Write a Python function {ENTRY_POINT}({argument}) that takes {described} and returns what these "
                f"steps make of it: " + ", then ".join(steps) + f". Examples: {examples}.")
    program = f"def {ENTRY_POINT}({argument}):\n    return {expression}\n"
    plan = "\n".join(f"{i + 1}. {step}" for i, step in enumerate(steps))
    solution = f"<think>\n{plan}\n</think>\n```python\n{program}```"
    tests = "\n".join(f"assert {ENTRY_POINT}({value!r}) == {function(value)!r}" for value in hidden)
    return Problem(id=f"code-{level}-{index:05d}", question=question, answer=program, solution=solution,
                   source="synthetic_code", level=level, tests=tests, entry_point=ENTRY_POINT)


def synthetic_code_problems(n: int, seed: int, levels: Sequence[int] = (1, 2, 3)) -> list[Problem]:
    """`n` problems with distinct questions, levels round-robin; the same list for the same seed."""
    return distinct_problems(synthetic_code_problem, n, seed, levels, "synthetic code problems",
                             max_draws=50 * n + 1000)


def split_synthetic_code(n_train: int, n_eval: int, seed: int, levels: Sequence[int] = (1, 2, 3)
                         ) -> tuple[list[Problem], list[Problem]]:
    """(training, held-out) problems with no question in both: the held-out set is drawn first from the seed's
    stream, so it does not depend on n_train."""
    return held_out_first(synthetic_code_problems(n_eval + n_train, seed, levels), n_eval, "code")
