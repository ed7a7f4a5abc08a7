"""The real math benchmarks and training sets: GSM8K, MATH (its training problems and MATH-500) and AIME 2024/2025,
each as a list of `Problem`s (from the hub or the bundled copy in data/, through `problems.hub.load_rows`)."""

from __future__ import annotations

from typing import Any

from problems.hub import load_rows
from problems.problem import Problem
from rewards.extract import find_last_boxed


def gsm8k_answer(answer_text: str) -> str:
    """GSM8K's gold answer: the text after '#### ', without thousands separators ("1,000" -> "1000")."""
    return answer_text.split("####")[-1].strip().replace(",", "")


def load_gsm8k(split: str = "train") -> list[Problem]:
    """GSM8K (openai/gsm8k, config main): 7473 train / 1319 test problems."""
    if split not in ("train", "test"):
        raise ValueError(f"GSM8K split must be 'train' or 'test', got {split!r}")
    rows = load_rows(("openai/gsm8k", "main", split), f"gsm8k_{split}.jsonl")
    return [Problem(id=f"gsm8k-{split}-{i}", question=row["question"], answer=gsm8k_answer(row["answer"]),
                    solution=row["answer"], source="gsm8k", level=None) for i, row in enumerate(rows)]


def _math_level(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())  # the hub copy may say "Level 3"
    return int(digits) if digits else None


def load_math500() -> list[Problem]:
    """MATH-500 (HuggingFaceH4/MATH-500): 500 competition problems, levels 1-5, LaTeX answers."""
    rows = load_rows(("HuggingFaceH4/MATH-500", None, "test"), "math500_test.jsonl")
    return [Problem(id=row.get("unique_id") or f"math500-{i}", question=row["problem"], answer=str(row["answer"]),
                    solution=row.get("solution"), source="math500", level=_math_level(row.get("level")))
            for i, row in enumerate(rows)]


MATH_TRAIN_HUB = ("DigitalLearningGmbH/MATH-lighteval", "default", "train")


def load_math_train() -> list[Problem]:
    """MATH's 7500 training problems (disjoint from its test set, hence from MATH-500), from the hub only: no copy
    is bundled. MATH gives no separate answer: the gold answer is the last \\boxed{} of the reference solution."""
    rows = load_rows(MATH_TRAIN_HUB, None)
    problems = [Problem(id=f"math-train-{i}", question=row["problem"], answer=find_last_boxed(row["solution"]) or "",
                        solution=row["solution"], source="math", level=_math_level(row.get("level")))
                for i, row in enumerate(rows)]
    return [problem for problem in problems if problem.answer]


AIME_HUB = {2024: ("HuggingFaceH4/aime_2024", None, "train"), 2025: ("math-ai/aime25", None, "test")}


def load_aime(year: int = 2024) -> list[Problem]:
    """AIME of `year` (2024: HuggingFaceH4/aime_2024, 2025: math-ai/aime25): 30 problems, integer answers."""
    if year not in AIME_HUB:
        raise ValueError(f"AIME year must be one of {sorted(AIME_HUB)}, got {year}")
    rows = load_rows(AIME_HUB[year], f"aime{year % 100}.jsonl")
    return [Problem(id=str(row.get("id") or f"aime{year}-{i}"), question=row["problem"],
                    answer=str(int(row["answer"])) if str(row["answer"]).strip().isdigit() else str(row["answer"]),
                    solution=row.get("solution"), source=f"aime{year}", level=None) for i, row in enumerate(rows)]
