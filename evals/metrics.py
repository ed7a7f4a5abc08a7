"""Statistics of an evaluation: from each problem's graded samples to pass@1, pass@k and maj@n with standard errors.

Pure functions over plain lists; no model, no grader. Conventions (the ones DeepSeek-R1, lighteval and the Codex
paper use):
- pass@1 is the mean over problems of the fraction of a problem's n samples that are correct.
- pass@k is the unbiased estimator 1 - C(n-c, k) / C(n, k) per problem (n samples, c correct), averaged over
  problems; it equals the mean, over every k-subset of the n samples, of "some sample in the subset is correct".
- maj@n is majority voting over the extracted answers of a problem's samples: the answer given most often wins;
  a tie goes to the tied answer that appeared first among the samples (sample order is the generation order, so
  the rule is reproducible); a problem with no extracted answer scores 0.
- Every metric's standard error is that of a mean over problems: the sample standard deviation (ddof 1) of the
  per-problem values divided by sqrt(number of problems). It is what the figure would move by if the problems were
  drawn again with the same number of samples each; it includes the sampling noise of the n samples.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """The probability that at least one of k samples drawn without replacement from n (c of them correct) is
    correct: 1 - C(n-c, k) / C(n, k), computed as a product so large n cannot overflow."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def k_values(n: int) -> list[int]:
    """The k reported for n samples: 1, 2, 4, ... up to n, and n itself."""
    ks = [k for k in (2 ** i for i in range(n.bit_length())) if k <= n]
    return ks + ([n] if n not in ks else [])


def majority_correct(correct: Sequence[bool], answers: Sequence[Hashable | None]) -> bool:
    """Whether the majority answer among a problem's samples is correct (the rule in this module's docstring).

    `answers[i]` is the key of sample i's extracted answer (None: nothing extracted); samples with equal keys vote
    together, so give equivalent answers one key (the grader's parsed form) where it is known.
    """
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return False
    winner = votes.most_common(1)[0][0]  # Counter keeps first-seen order among equal counts
    return bool(next(c for c, a in zip(correct, answers) if a == winner))


def mean_and_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (sample std, ddof 1, over sqrt(len)); the error is 0 for fewer than 2 values."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    variance = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
    return mean, math.sqrt(variance / len(values))


def score_problems(correct: Sequence[Sequence[bool]], answers: Sequence[Sequence[Hashable | None]] | None = None,
                   ) -> dict[str, float]:
    """pass@1, pass@k for every k of `k_values`, and maj@n (when `answers` is given), each with `<name>_stderr`.

    Args:
        correct: per problem, the verdict of each of its samples. Problems may have different sample counts (graded
            predictions from elsewhere); pass@k is then reported for k up to the smallest count, and `n` is that
            smallest count (`n_max` the largest).
        answers: per problem, each sample's answer key for majority voting (see `majority_correct`).

    Returns:
        {"problems", "n", "n_max", "pass@1", "pass@1_stderr", "pass@2", ..., "pass@n" (= pass@{n}), "maj@n", and
        the standard error of each as "<name>_stderr"}.

    Raises:
        ValueError: no problems, or a problem with no samples.
    """
    if not correct:
        raise ValueError("no problems to score")
    counts = [len(c) for c in correct]
    if min(counts) == 0:
        raise ValueError(f"problem {counts.index(0)} has no samples to score")
    n = min(counts)
    scores: dict[str, float] = {"problems": len(correct), "n": n, "n_max": max(counts)}
    for k in k_values(n):
        scores[f"pass@{k}"], scores[f"pass@{k}_stderr"] = mean_and_stderr(
            [pass_at_k(len(c), sum(map(bool, c)), k) for c in correct])
    # pass@n: the same figure as pass@{n}, under a name that does not change with n (for curves and comparisons)
    scores["pass@n"], scores["pass@n_stderr"] = scores[f"pass@{n}"], scores[f"pass@{n}_stderr"]
    if answers is not None:
        if len(answers) != len(correct) or any(len(a) != len(c) for a, c in zip(answers, correct)):
            raise ValueError("answers must have one entry per sample of every problem, as correct does")
        scores["maj@n"], scores["maj@n_stderr"] = mean_and_stderr(
            [float(majority_correct(c, a)) for c, a in zip(correct, answers)])
    return scores
