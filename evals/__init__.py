"""Evaluation: scoring graded samples (pass@1, pass@k, maj@n with standard errors), grading anyone's generations,
and the records an evaluation writes (results.json, samples.jsonl, a markdown table).

It imports `rewards` (the grader training uses) and `model`; generation is the caller's (rl's rollout workers or a
local vLLM engine), so search and rl can both use it.
"""

from evals.metrics import k_values, majority_correct, mean_and_stderr, pass_at_k, score_problems

__all__ = ["k_values", "majority_correct", "mean_and_stderr", "pass_at_k", "score_problems"]
