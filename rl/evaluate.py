"""Evaluation: k samples per problem, graded by the math answer checker on the same text training grades; pass@1
(averaged over the k samples) with its standard error, maj@k (majority vote over extracted answers) and pass@k."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict
from typing import Callable

from rl.batch import RolloutBatch, Sample


def score_samples(correct: list[list[bool]], answers: list[list[str | None]]) -> dict[str, float]:
    """pass@1, its standard error, maj@k and pass@k from per-problem lists of k verdicts and extracted answers.

    pass@1_stderr is the standard error of the mean over problems of each problem's fraction correct: what the
    figure would move by if the problems were drawn again (with k samples each). maj@k: the most frequent extracted
    answer wins; a tie goes to the answer that appeared first among the samples.
    """
    n = max(len(correct), 1)
    per_problem = [sum(c) / max(len(c), 1) for c in correct]
    pass1 = sum(per_problem) / n
    variance = sum((p - pass1) ** 2 for p in per_problem) / max(n - 1, 1)
    pass_k = sum(any(c) for c in correct) / n
    majority = 0.0
    for verdicts, extracted in zip(correct, answers):
        votes = Counter(a for a in extracted if a is not None)
        if votes:
            winner = votes.most_common(1)[0][0]  # Counter keeps first-seen order among equal counts
            majority += next(c for c, a in zip(verdicts, extracted) if a == winner)
    return {"pass@1": pass1, "pass@1_stderr": math.sqrt(variance / n), "maj@k": majority / n, "pass@k": pass_k}


def evaluate(generate: Callable[..., list[Sample]], problems: list, tokenizer, *, k: int, max_tokens: int,
             temperature: float = 1.0, seed: int = 0, system_prompt: str | None = None) -> dict:
    """Generate k completions per problem with `generate` (a RolloutWorker's method or a remote call wrapper),
    grade them, and return the scores plus the per-problem records."""
    from model import decode_completion
    from rewards import grade_batch
    from rl.data import build_prompt

    started = time.perf_counter()
    prompts = [build_prompt(problem, tokenizer, system_prompt) for problem in problems]
    samples = generate(prompts, n=k, max_tokens=max_tokens, temperature=temperature, seed=seed)
    batch = RolloutBatch.from_groups(samples, [asdict(p) for p in problems], k,
                                     [decode_completion(tokenizer, s.completion_ids) for s in samples])
    verdicts = grade_batch(batch.completions, batch.columns["answer"])
    groups = [batch.group(g) for g in range(len(problems))]
    correct = [[verdicts[i].correct for i in group] for group in groups]
    answers = [[verdicts[i].extracted for i in group] for group in groups]
    scores = score_samples(correct, answers)
    scores |= {"k": k, "problems": len(problems), "seconds": time.perf_counter() - started,
               "mean_completion_tokens": sum(len(s.completion_ids) for s in samples) / max(len(samples), 1)}
    records = [{"id": p.id, "answer": p.answer, "completions": [batch.completions[i] for i in group],
                "extracted": answers[g], "correct": correct[g]} for g, (p, group) in enumerate(zip(problems, groups))]
    return {"scores": scores, "records": records}
