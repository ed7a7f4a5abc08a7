"""The rule-based process scorer and its combination with a learned one."""

from search.reward_models import CombinedValue, combined_scores, step_checker_scores, step_checker_value

STEPS = ["<think>\n", "45 * 2 = 90\n", "90 * 2 = 181\n", "</think>\n", "The answer is \\boxed{181}."]


def test_the_step_checker_scores_each_step_by_the_equations_it_states():
    assert step_checker_scores("q", STEPS) == [0.5, 1.0, 0.0, 0.5, 0.5]
    assert step_checker_scores("q", []) == []
    assert step_checker_value("q", STEPS) == 0.5 and step_checker_value("q", STEPS[:2]) == 1.0


def test_the_combination_zeroes_a_learned_score_where_the_checker_finds_a_false_equation():
    assert combined_scores([0.8, 0.7, 0.9, 0.6, 0.5], step_checker_scores("q", STEPS)) == [0.8, 0.7, 0.0, 0.6, 0.5]

    class Learned:
        calls = 0

        def __call__(self, problem, steps):
            Learned.calls += 1
            return 0.75

    value = CombinedValue(Learned())
    assert value("q", STEPS[:2]) == 0.75 and value("q", []) == 0.75
    assert value("q", STEPS[:3]) == 0.0 and Learned.calls == 2  # a false equation needs no reward-model call
