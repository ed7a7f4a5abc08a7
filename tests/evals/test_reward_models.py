"""Reward-model quality statistics: AUC against its definition, ProcessBench's first-error measure by hand."""

import itertools
import math
import random

import pytest

from evals.reward_models import (best_threshold, first_error, first_error_scores, predicted_first_error, roc_auc,
                                 step_scores_and_labels)


def brute_force_auc(scores, labels):
    pairs = [(p, n) for p, n in itertools.product(
        [s for s, l in zip(scores, labels) if l], [s for s, l in zip(scores, labels) if not l])]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def test_auc_is_the_share_of_correctly_ordered_pairs_with_ties_counting_half():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(2, 12)
        scores = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(n)]  # many ties
        labels = [rng.random() < 0.5 for _ in range(n)]
        if all(labels) or not any(labels):
            assert math.isnan(roc_auc(scores, labels))
        else:
            assert roc_auc(scores, labels) == pytest.approx(brute_force_auc(scores, labels))
    assert roc_auc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert roc_auc([0.1, 0.9], [True, False]) == 0.0
    with pytest.raises(ValueError):
        roc_auc([0.1], [True, False])


def test_first_error_accuracy_and_f1_as_processbench_counts_them():
    gold = [[True, False, True], [True, True], [False], [True, True, True]]
    scores = [[0.9, 0.2, 0.9],   # first error found at 1: right
              [0.9, 0.4],        # calls step 1 an error, there is none: wrong
              [0.8],             # misses the error at 0: wrong
              [0.6, 0.7, 0.9]]   # no error, none called: right
    assert [first_error(g) for g in gold] == [1, -1, 0, -1]
    assert [predicted_first_error(s) for s in scores] == [1, 1, -1, -1]
    result = first_error_scores(scores, gold)
    assert result["error_accuracy"] == 0.5 and result["correct_accuracy"] == 0.5 and result["f1"] == 0.5
    assert (result["with_error"], result["without_error"]) == (2, 2)


def test_steps_after_the_first_error_are_left_out_of_the_auc():
    scores, labels = step_scores_and_labels([[0.9, 0.1, 0.8], [0.7, 0.6]], [[True, False, True], [True, True]])
    assert scores == [0.9, 0.1, 0.7, 0.6] and labels == [True, False, True, True]


def test_the_calibrated_threshold_separates_a_scorer_whose_scale_is_off():
    """A scorer that ranks perfectly but scores everything above 0.5 finds no error at 0.5; calibrated, it does."""
    gold = [[True, False], [True, True], [False, True], [True, True]]
    scores = [[0.9, 0.6], [0.95, 0.9], [0.62, 0.9], [0.91, 0.93]]
    assert first_error_scores(scores, gold)["f1"] == 0.0
    threshold = best_threshold(scores, gold)
    assert 0.62 < threshold <= 0.9 and first_error_scores(scores, gold, threshold)["f1"] == 1.0
