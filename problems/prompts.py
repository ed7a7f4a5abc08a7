"""Prompts: a problem as the policy's chat-templated prompt token ids, and worked examples for few-shot prompts."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Sequence

from model.config import ConfigError
from problems.math_benchmarks import load_gsm8k
from problems.problem import Problem
from problems.sources import ALIASES, load_split


def build_prompt(problem: Problem, tokenizer: Any, system_prompt: str | None = None,
                 examples: Sequence[Problem] = ()) -> list[int]:
    """Chat-templated prompt token ids, ending with the assistant turn's opening (add_generation_prompt); for a
    tokenizer without a chat template (a base model), the plain prompt "Problem: ...\\nSolution:".

    Args:
        problem: the problem whose question becomes the user message.
        tokenizer: a Hugging Face tokenizer with a chat template (the project's: `model.load_tokenizer()`).
        system_prompt: optional system message (e.g. Qwen2.5-Math's "Please reason step by step, and put your
            final answer within \\boxed{}.").
        examples: worked examples shown first (few-shot; `few_shot_examples`): in the plain prompt as earlier
            "Problem: ... Solution: ..." pairs, in a chat as earlier user/assistant turns.
    """
    if not getattr(tokenizer, "chat_template", None):  # a base model: a plain prompt it can continue
        shots = "".join(f"Problem: {e.question}\nSolution: {e.solution}\n\n" for e in examples)
        text = (f"{system_prompt}\n\n" if system_prompt else "") + shots + f"Problem: {problem.question}\nSolution:"
        return list(tokenizer(text, add_special_tokens=True)["input_ids"])
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for example in examples:
        messages += [{"role": "user", "content": example.question}, {"role": "assistant", "content": example.solution}]
    messages.append({"role": "user", "content": problem.question})
    # transformers 5 returns a BatchEncoding unless return_dict=False.
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    return list(ids)


# Worked examples for sets without a training split of their own (MATH-500, AIME, a user's file), written for this
# project in MATH's style: short reasoning, then the final answer boxed as the grader reads it first.
FEW_SHOT_MATH = [
    Problem("shot-1", "What is the value of $2^5 - 3^3$?", "5",
            "$2^5 = 32$ and $3^3 = 27$, so $2^5 - 3^3 = 32 - 27 = 5$.\nThe answer is \\boxed{5}.", "few-shot", None),
    Problem("shot-2", "Solve for $x$: $4x - 7 = 2x + 9$.", "8",
            "Subtracting $2x$ from both sides gives $2x - 7 = 9$, so $2x = 16$ and $x = 8$.\n"
            "The answer is \\boxed{8}.", "few-shot", None),
    Problem("shot-3", "A rectangle has perimeter 30 and one side of length 9. What is its area?", "54",
            "The two sides add up to half the perimeter, $15$, so the other side is $15 - 9 = 6$ and the area is "
            "$9 \\cdot 6 = 54$.\nThe answer is \\boxed{54}.", "few-shot", None),
    Problem("shot-4", "Write $\\frac{18}{24}$ in lowest terms.", "\\frac{3}{4}",
            "The greatest common divisor of 18 and 24 is 6, and $18 = 6 \\cdot 3$, $24 = 6 \\cdot 4$.\n"
            "The answer is \\boxed{\\frac{3}{4}}.", "few-shot", None),
]


def gsm8k_solution_as_boxed(solution: str) -> str:
    """A GSM8K reference solution in the form our prompts teach: calculator annotations <<48/2=24>> dropped and the
    "#### 72" line written "The answer is \\boxed{72}."."""
    reasoning, _, answer = re.sub(r"<<[^>]*>>", "", solution).rpartition("####")
    return f"{reasoning.strip()}\nThe answer is \\boxed{{{answer.strip().replace(',', '')}}}."


def few_shot_examples(bench: str, k: int, *, seed: int = 0, levels: Sequence[int] = (1, 2, 3)) -> list[Problem]:
    """k worked examples for a few-shot prompt (a base model's): from the benchmark's own training split when it
    has one (the synthetic and synthetic-code train streams, disjoint from their held-out problems; GSM8K train),
    else FEW_SHOT_MATH (none for HumanEval).

    Raises:
        ConfigError: k < 0, or more examples than the source has (FEW_SHOT_MATH holds 4).
    """
    if k < 0:
        raise ConfigError(f"few-shot examples must be >= 0, got {k}")
    if k == 0:
        return []
    name = ALIASES.get(bench, bench)
    if name in ("synthetic", "synthetic_code", "synthetic_tools"):
        return load_split(name, "train", num_train=k, seed=seed, levels=levels)
    if name == "humaneval":
        raise ConfigError("humaneval: no few-shot examples for code sets yet (its prompt already shows the "
                          "function to complete)")
    if name == "gsm8k":
        return [replace(p, solution=gsm8k_solution_as_boxed(p.solution)) for p in load_gsm8k("train")[:k]]
    if k > len(FEW_SHOT_MATH):
        raise ConfigError(f"{bench}: at most {len(FEW_SHOT_MATH)} few-shot examples (it has no training split; the "
                          f"examples are problems.FEW_SHOT_MATH), got {k}")
    return FEW_SHOT_MATH[:k]
