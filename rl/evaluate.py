"""Evaluation: k samples per problem, graded by the math answer checker; pass@1 (averaged over the k
samples), maj@k (majority vote over extracted answers) and pass@k."""

from __future__ import annotations

import time
from collections import Counter
from typing import Callable

from rl.batch import Sample


def score_samples(correct: list[list[bool]], answers: list[list[str | None]]) -> dict[str, float]:
    """pass@1, maj@k and pass@k from per-problem lists of k verdicts and extracted answers."""
    n = max(len(correct), 1)
    pass1 = sum(sum(c) / max(len(c), 1) for c in correct) / n
    pass_k = sum(any(c) for c in correct) / n
    majority = 0.0
    for verdicts, extracted in zip(correct, answers):
        votes = Counter(a for a in extracted if a is not None)
        if votes:
            winner = votes.most_common(1)[0][0]
            majority += next(c for c, a in zip(verdicts, extracted) if a == winner)
    return {"pass@1": pass1, "maj@k": majority / n, "pass@k": pass_k}


def evaluate(generate: Callable[..., list[Sample]], problems: list, tokenizer, *, k: int, max_tokens: int,
             temperature: float = 1.0, seed: int = 0, system_prompt: str | None = None) -> dict:
    """Generate k completions per problem with `generate` (a RolloutWorker's method or a remote call wrapper),
    grade them, and return the scores plus the per-problem records."""
    from rewards import grade_batch
    from rl.data import build_prompt

    started = time.perf_counter()
    prompts = [build_prompt(problem, tokenizer, system_prompt) for problem in problems]
    samples = generate(prompts, n=k, max_tokens=max_tokens, temperature=temperature, seed=seed)
    texts = [tokenizer.decode(s.completion_ids, skip_special_tokens=True) for s in samples]
    golds = [problem.answer for problem in problems for _ in range(k)]
    verdicts = grade_batch(texts, golds)
    correct = [[v.correct for v in verdicts[i * k:(i + 1) * k]] for i in range(len(problems))]
    answers = [[v.extracted for v in verdicts[i * k:(i + 1) * k]] for i in range(len(problems))]
    scores = score_samples(correct, answers)
    scores |= {"k": k, "problems": len(problems), "seconds": time.perf_counter() - started,
               "mean_completion_tokens": sum(len(s.completion_ids) for s in samples) / max(len(samples), 1)}
    records = [{"id": p.id, "answer": p.answer, "completions": texts[i * k:(i + 1) * k], "correct": correct[i]}
               for i, p in enumerate(problems)]
    return {"scores": scores, "records": records}
