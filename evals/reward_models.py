"""How well a process reward model ranks steps: pure statistics over scored, labelled steps.

- Step-level AUC: the probability that a random correct step scores above a random wrong one (ties count a half),
  the Mann-Whitney form of the area under the ROC curve.
- First-error-step accuracy (ProcessBench's measure): a solution's predicted first error is its first step scored
  below a threshold (none: -1, "no error"); it is right when it equals the labelled first error. Reported on
  solutions with an error and on those without, and their harmonic mean (ProcessBench's F1), since a scorer that
  calls every step correct is right on every error-free solution.
"""

from __future__ import annotations

import math
from typing import Sequence

__all__ = ["roc_auc", "first_error", "predicted_first_error", "first_error_scores", "step_scores_and_labels",
           "best_threshold"]


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve of `scores` for the positive `labels` (ties between a positive and a negative count
    a half); NaN when either class is empty."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    positives = sum(1 for label in labels if label)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return math.nan
    # rank-sum: average ranks over ties, then U = R+ - P(P+1)/2
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2 + 1
        start = end + 1
    rank_sum = sum(rank for rank, label in zip(ranks, labels) if label)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def first_error(step_correct: Sequence[bool]) -> int:
    """Index of the first wrong step, or -1 when every step is right."""
    return next((i for i, ok in enumerate(step_correct) if not ok), -1)


def predicted_first_error(step_scores: Sequence[float], threshold: float = 0.5) -> int:
    """Index of the first step a scorer puts below `threshold`, or -1."""
    return next((i for i, score in enumerate(step_scores) if score < threshold), -1)


def first_error_scores(step_scores: Sequence[Sequence[float]], step_correct: Sequence[Sequence[bool]],
                       threshold: float = 0.5) -> dict[str, float]:
    """ProcessBench's figures over solutions: accuracy on those with an error, on those without, and their F1.

    Returns:
        {"error_accuracy", "correct_accuracy", "f1", "with_error", "without_error"} (accuracies NaN on no solutions).
    """
    hits = {True: [], False: []}  # has an error -> [predicted first error == labelled one]
    for scores, correct in zip(step_scores, step_correct, strict=True):
        gold = first_error(correct)
        hits[gold >= 0].append(predicted_first_error(scores, threshold) == gold)
    error_acc = sum(hits[True]) / len(hits[True]) if hits[True] else math.nan
    correct_acc = sum(hits[False]) / len(hits[False]) if hits[False] else math.nan
    f1 = 2 * error_acc * correct_acc / (error_acc + correct_acc) if error_acc + correct_acc > 0 else 0.0
    return {"error_accuracy": error_acc, "correct_accuracy": correct_acc, "f1": f1,
            "with_error": len(hits[True]), "without_error": len(hits[False])}


def step_scores_and_labels(step_scores: Sequence[Sequence[float]], step_correct: Sequence[Sequence[bool]]
                           ) -> tuple[list[float], list[bool]]:
    """Flatten solutions into (score, label) pairs for AUC, keeping each solution's steps up to and including its
    first error: after it, whether a step is "right" is not defined (it continues from a wrong state)."""
    scores, labels = [], []
    for solution_scores, correct in zip(step_scores, step_correct, strict=True):
        stop = first_error(correct)
        keep = len(correct) if stop < 0 else stop + 1
        scores += list(solution_scores[:keep])
        labels += list(correct[:keep])
    return scores, labels


def best_threshold(step_scores: Sequence[Sequence[float]], step_correct: Sequence[Sequence[bool]]) -> float:
    """The threshold that maximises first-error F1 on these (training) solutions, among 0.5 and the percentiles of
    their scores; used on held-out solutions, so the figure there is not fitted to them."""
    values = sorted(s for scores in step_scores for s in scores)
    candidates = {0.5, *(values[len(values) * q // 100] for q in range(1, 100))} if values else {0.5}
    return max(sorted(candidates), key=lambda t: (first_error_scores(step_scores, step_correct, t)["f1"], -abs(t - 0.5)))
