"""evals.metrics: the unbiased pass@k estimator, majority voting's tie rule and the standard errors."""

import itertools
import math
import random

import pytest

from evals.metrics import k_values, majority_correct, mean_and_stderr, pass_at_k, score_problems


@pytest.mark.parametrize("n, c, k, expected", [
    (1, 0, 1, 0.0), (1, 1, 1, 1.0), (2, 1, 1, 0.5), (4, 1, 2, 0.5), (5, 2, 2, 1 - 3 / 10), (10, 3, 1, 0.3),
    (16, 0, 16, 0.0), (16, 1, 16, 1.0), (8, 6, 3, 1.0),   # 2 wrong samples cannot fill a subset of 3
    (64, 5, 8, 1 - math.comb(59, 8) / math.comb(64, 8)),
])
def test_pass_at_k_equals_its_closed_form(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_is_the_mean_over_every_k_subset():
    """The estimator's definition: draw k of the n samples without replacement, all ways equally likely."""
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 9)
        verdicts = [rng.random() < 0.4 for _ in range(n)]
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(verdicts, k))
            brute = sum(any(s) for s in subsets) / len(subsets)
            assert pass_at_k(n, sum(verdicts), k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_does_not_overflow_for_large_n():
    assert 0.0 < pass_at_k(100_000, 3, 1000) < 1.0


@pytest.mark.parametrize("n, c, k", [(4, 5, 1), (4, -1, 1), (4, 1, 0), (4, 1, 5)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


def test_k_values_are_powers_of_two_and_n():
    assert k_values(1) == [1]
    assert k_values(8) == [1, 2, 4, 8]
    assert k_values(12) == [1, 2, 4, 8, 12]


def test_majority_vote_ties_go_to_the_answer_seen_first():
    # "3" and "4" have two votes each; "4" appeared first, and it is wrong
    assert majority_correct([False, True, True, False], ["4", "3", "3", "4"]) is False
    assert majority_correct([True, False, False, True], ["3", "4", "4", "3"]) is True
    assert majority_correct([False, True, True], ["5", "3", "3"]) is True  # a plain majority
    assert majority_correct([False, False], [None, None]) is False          # nothing extracted: no vote, 0


def test_mean_and_stderr():
    mean, stderr = mean_and_stderr([0.0, 1.0, 1.0, 0.0])
    assert mean == 0.5 and stderr == pytest.approx(math.sqrt((4 * 0.25 / 3) / 4))
    assert mean_and_stderr([0.3]) == (0.3, 0.0)


def test_score_problems_reports_every_k_with_its_error():
    correct = [[True, False, False, False], [True, True, True, True], [False] * 4]
    answers = [["1", "2", "2", None], ["7"] * 4, [None] * 4]
    scores = score_problems(correct, answers)
    assert scores["problems"] == 3 and scores["n"] == scores["n_max"] == 4
    assert scores["pass@1"] == pytest.approx((0.25 + 1 + 0) / 3)
    assert scores["pass@2"] == pytest.approx((pass_at_k(4, 1, 2) + 1 + 0) / 3)
    assert scores["pass@4"] == scores["pass@n"] == pytest.approx(2 / 3)
    assert scores["maj@n"] == pytest.approx(1 / 3)   # problem 0's majority "2" is wrong
    assert scores["pass@1_stderr"] == pytest.approx(mean_and_stderr([0.25, 1.0, 0.0])[1])
    assert {"pass@2_stderr", "pass@4_stderr", "maj@n_stderr"} <= set(scores)


def test_problems_with_different_sample_counts():
    scores = score_problems([[True, False], [True, False, False, False]])
    assert scores["n"] == 2 and scores["n_max"] == 4 and "pass@4" not in scores
    assert scores["pass@2"] == pytest.approx((1.0 + pass_at_k(4, 1, 2)) / 2)


def test_score_problems_rejects_what_it_cannot_score():
    with pytest.raises(ValueError, match="no problems"):
        score_problems([])
    with pytest.raises(ValueError, match="problem 1 has no samples"):
        score_problems([[True], []])
    with pytest.raises(ValueError, match="one entry per sample"):
        score_problems([[True, False]], [["1"]])
