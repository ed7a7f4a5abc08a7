"""Math-Shepherd labels on a scripted policy: every label can be computed by hand."""

from search.generator import STEP_DELIMITER
from search.step_labels import monte_carlo_labels


def boxed_grader(texts, golds):
    return [f"\\boxed{{{gold}}}" in text for text, gold in zip(texts, golds)]


def test_each_step_is_labelled_by_the_rollouts_from_its_prefix(order_of_operations):
    """From the root the policy adds first (p 0.6, answer 20, wrong) or multiplies first (p 0.4, answer 14,
    right); after either first step the rest is forced."""
    generator, _ = order_of_operations
    labelled = monte_carlo_labels(generator, [generator.encode(generator.prompt)], ["p0"], ["14"], solutions=8, rollouts=4,
                                  max_tokens=200, grade=boxed_grader)
    assert len(labelled) == 8
    seen = set()
    for solution in labelled:
        first = solution.steps[0].removesuffix(STEP_DELIMITER)
        seen.add(first)
        assert "".join(solution.steps).startswith(first) and len(solution.steps) == 3
        # after the first step everything is forced: every rollout reaches the same answer
        expected = first.startswith("Multiply")
        assert solution.correct is expected
        assert solution.soft == [float(expected)] * 3 and solution.hard == [expected] * 3
        assert solution.prompt == generator.prompt and solution.gold == "14" and solution.problem_id == "p0"
    assert seen == {"Add first: 2+3=5.", "Multiply first: 3*4=12."}  # 8 samples see both first steps
    # one call for the solutions, then one per non-final step prefix (no batched method: one call each)
    assert len(generator.calls) == 1 + 8 * 2 and all(c["k"] == 4 for c in generator.calls[1:])


def test_a_solution_cut_off_at_the_token_limit_is_wrong_even_if_its_text_holds_the_answer(fake):
    generator = fake({(): [("\\boxed{14} and then more words", 1.0)]})
    labelled = monte_carlo_labels(generator, [generator.encode(generator.prompt)], ["p0"], ["14"], solutions=2,
                                  rollouts=2, max_tokens=12, grade=boxed_grader)
    assert len(labelled) == 2
    for solution in labelled:
        assert solution.steps == ["\\boxed{14} a"] and not solution.correct and solution.soft == [0.0]


def test_a_partly_right_prefix_gets_a_soft_label_between_0_and_1(fake):
    """From the root of a table whose first step leads to a right or a wrong answer by chance, the soft label is the
    share of rollouts that reach the gold, and the hard label says whether any did."""
    table = {(): [("Guess.", 1.0)], ("Guess.",): [("\\boxed{1}", 0.5), ("\\boxed{2}", 0.5)]}
    generator = fake(table)
    labelled = monte_carlo_labels(generator, [generator.encode(generator.prompt)], ["p"], ["1"], solutions=2, rollouts=64,
                                  max_tokens=200, seed=3, grade=boxed_grader)
    for solution in labelled:
        assert 0.3 < solution.soft[0] < 0.7 and solution.hard[0]
        assert solution.soft[1] == float(solution.correct)
