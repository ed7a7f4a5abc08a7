"""search.mcts and search.evaluation: PUCT, the MCTS loop, widening, and the ways a leaf is valued (value function,
verified rollouts, a weighted mix, scored rollouts)."""

import pytest

from search import solve
from search.evaluation import ScoredRollout, VerifiedRollout
from search.generator import split_steps
from search.mcts import MCTS, puct_score
from search.methods import build_mcts
from search.tree import Node


def two_children(value_sum_a):
    """A parent visited 10 times: a (prior .7, 6 visits) and b (prior .3, never visited)."""
    parent = Node(visits=10)
    a = Node(step="a", prior=0.7, visits=6, value_sum=value_sum_a, parent=parent)
    b = Node(step="b", prior=0.3, parent=parent)
    parent.children = [a, b]
    return parent, a, b


# c(10) = 1.25 + ln(19663 / 19652) = 1.2505596; a: Q + c * .7 * sqrt(10) / 7; b: 0 + c * .3 * sqrt(10) / 1.
@pytest.mark.parametrize("value_sum_a, score_a, score_b, picked", [
    (3.0, 0.8954617, 1.1863850, "b"),  # a's Q = .5: b's exploration term wins
    (5.4, 1.2954617, 1.1863850, "a"),  # a's Q = .9: exploitation wins
])
def test_puct_scores_and_picks_what_the_formula_says(value_sum_a, score_a, score_b, picked):
    parent, a, b = two_children(value_sum_a)
    assert puct_score(parent, a) == pytest.approx(score_a, abs=1e-6)
    assert puct_score(parent, b) == pytest.approx(score_b, abs=1e-6)
    assert MCTS().select(parent).step == picked


def test_mcts_with_a_perfect_value_finds_the_answer_the_most_probable_steps_miss(order_of_operations, context):
    generator, value = order_of_operations
    ctx = context(generator, value_fn=value, budget_tokens=150)
    root, chosen, chosen_value = MCTS(num_children=2)(ctx)
    assert chosen.answer == "14" and chosen_value == 1.0
    assert root.children[0].prior > root.children[1].prior  # the prior prefers the wrong first step...
    assert root.children[1].visits > root.children[0].visits  # ...the search visits the right one more
    assert not root.exhausted and ctx.counter.policy >= 150  # ...and the budget ends before the tree does


def test_a_small_tree_is_searched_to_its_end_within_budget(order_of_operations, context):
    generator, value = order_of_operations
    ctx = context(generator, value_fn=value, budget_tokens=1000)
    root, chosen, _ = MCTS(num_children=2)(ctx)
    assert chosen.answer == "14" and ctx.counter.policy < 1000
    # every node sampled until it brought nothing new; each solution scored once, then passed over
    assert root.exhausted and all(n.saturated for n in root.nodes() if not n.terminal)
    assert [n.visits for n in root.nodes() if n.terminal] == [1, 1]


def test_mcts_by_verified_rollouts_alone_finds_the_answer(order_of_operations, context):
    generator, _ = order_of_operations
    ctx = context(generator, verifier=lambda text: "\\boxed{14}" in text, budget_tokens=400)
    root, chosen, _ = MCTS(num_children=2, evaluation=VerifiedRollout(1.0))(ctx)
    assert chosen.answer == "14" and chosen.correct is True
    rollouts = [c for c in generator.calls if c["k"] == 1]
    assert rollouts and ctx.counter.policy == generator.generated  # rollout tokens are policy tokens too


def test_mcts_refuses_to_run_without_an_evaluation(order_of_operations):
    generator, _ = order_of_operations
    with pytest.raises(ValueError, match="value_fn"):
        solve(generator.prompt, generator, "mcts")
    with pytest.raises(ValueError, match="verifier"):
        solve(generator.prompt, generator, "mcts", value_fn=lambda p, s: 0.5, rollout_weight=0.5)
    assert generator.calls == []  # refused before any generation


def test_a_mixed_evaluation_weighs_the_value_fn_against_the_verified_rollout(order_of_operations, context):
    generator, _ = order_of_operations
    ctx = context(generator, value_fn=lambda p, s: 0.2, verifier=lambda text: "\\boxed{14}" in text)
    evaluate = VerifiedRollout(0.25)
    right = ctx.expand(ctx.expand(ctx.expand(Node(), 2)[1], 1)[0], 1)[0]
    assert right.answer == "14"
    assert evaluate(ctx, right) == pytest.approx(0.75 * 0.2 + 0.25 * 1.0) and right.correct is True
    calls = ctx.counter.reward_calls
    assert evaluate(ctx, right) == pytest.approx(0.4) and ctx.counter.reward_calls == calls  # evaluated once


# Two first steps of equal prior; each leads in two more steps to its own answer; "B" is right.
TWO_WAYS = {
    (): [("Way A.", 0.5), ("Way B.", 0.5)],
    **{(f"Way {w}.",): [(f"Then {w}.", 1.0)] for w in "AB"},
    **{(f"Way {w}.", f"Then {w}."): [(f"The answer is \\boxed{{{w}}}.", 1.0)] for w in "AB"},
}

# Four first steps; only the third, with prior .2, leads to the right answer.
FOUR_WAYS = {
    (): [("Way A.", 0.4), ("Way B.", 0.3), ("Way C.", 0.2), ("Way D.", 0.1)],
    **{(f"Way {w}.",): [(f"The answer is \\boxed{{{w}}}.", 1.0)] for w in "ABCD"},
}


def test_a_search_that_runs_out_of_budget_unfinished_answers_from_its_best_leaf_greedily(fake, value_knowing,
                                                                                         context):
    generator = fake(TWO_WAYS)
    ctx = context(generator, value_fn=value_knowing(("Way B.", "Then B.", "The answer is \\boxed{B}.")),
                  budget_tokens=20)  # the root's expansion (14 tokens) and one more: A, evaluated at 0
    root, chosen, value = MCTS(num_children=2)(ctx)
    a, b = root.children
    assert a.value == 0.0 and a.visits == 1 and b.score is None and ctx.counter.policy_calls == 3  # b: never simulated
    # no solution was finished: the best leaf is B (unvisited, so valued at its parent's value, above A's 0),
    # finished at temperature 0 in one call past the budget, evaluated and backed up
    assert chosen.parent is b and chosen.answer == "B" and value == 1.0 and b.visits == 1
    assert generator.calls[-1]["k"] == 1 and ctx.counter.policy == generator.generated > 20


def test_selection_passes_over_finished_subtrees_so_every_simulation_expands(fake, value_knowing, context):
    generator = fake(FOUR_WAYS)
    ctx = context(generator, value_fn=value_knowing(("Way C.", "The answer is \\boxed{C}.")), budget_tokens=10_000)
    root = MCTS(num_children=4).search(ctx, Node())
    # 1 simulation expands the root, 4 expand its children, 4 score the solutions below them; then each node whose
    # children are all finished is widened once (4 + 1), brings nothing new and is saturated. No solution is
    # scored twice, and the search ends with the tree. (Each simulation backs up through the root once.)
    assert root.exhausted and root.visits == 1 + 4 + 4 + 4 + 1
    assert all(n.visits == 1 for n in root.nodes() if n.terminal)
    assert all(n.saturated for n in root.nodes() if not n.terminal)


def test_widening_finds_a_step_the_first_samples_missed(fake, value_knowing, context):
    generator = fake({(): [("Way A.", 0.5), ("Way B.", 0.3), ("Way C.", 0.2)],
                      **{(f"Way {w}.",): [(f"The answer is \\boxed{{{w}}}.", 1.0)] for w in "ABC"}})
    ctx = context(generator, value_fn=value_knowing(("Way C.", "The answer is \\boxed{C}.")), budget_tokens=10_000)
    root, chosen, _ = MCTS(num_children=2)(ctx)
    # 2 samples a call: A and B first; once both are finished the root is sampled again (C, A), then once more
    # (B, C: nothing new, saturated)
    assert [c.step for c in root.children] == ["Way A.\n", "Way B.\n", "Way C.\n"]
    assert generator.step_calls[generator.prompt] == 3 and root.saturated
    assert chosen.answer == "C"


def outcome(problem, steps):
    """An outcome scorer: 1 for a finished solution answering 14, else 0."""
    return 1.0 if steps and "\\boxed{14}" in steps[-1] else 0.0


def test_scored_rollouts_value_a_node_by_its_sampled_finish_and_keep_the_finish_as_a_candidate(order_of_operations,
                                                                                                context):
    generator, _ = order_of_operations
    ctx = context(generator, value_fn=outcome, budget_tokens=400)
    root, chosen, value = MCTS(num_children=2, evaluation=ScoredRollout())(ctx)
    assert chosen.answer == "14" and value == 1.0
    finishes = [n for n in root.nodes() if n.terminal and n.parent is not None and len(split_steps(n.step)) > 1]
    assert finishes  # whole finishes hang under the nodes they valued, one visit each, scored by the value_fn
    for finish in finishes:
        assert finish.visits == 1 and finish.score == outcome("", split_steps(finish.text())) and finish.exhausted
        assert finish.parent.score == finish.score  # the node's value is its finish's score
    assert ctx.counter.policy == generator.generated  # the rollouts' tokens are policy tokens too
    with pytest.raises(ValueError, match="one of them"):
        build_mcts(scored_rollouts=True, rollout_weight=0.5)
    with pytest.raises(ValueError, match="value_fn"):
        solve(generator.prompt, generator, "mcts", scored_rollouts=True)


def test_expansions_sample_at_the_step_temperature_and_rollouts_at_the_temperature(order_of_operations, context):
    generator, _ = order_of_operations
    scored = MCTS(num_children=2, evaluation=ScoredRollout())
    scored(context(generator, value_fn=outcome, budget_tokens=400, temperature=0.7, step_temperature=1.3))
    temperatures = {(call["step"], call["temperature"]) for call in generator.calls}
    assert temperatures == {(True, 1.3), (False, 0.7)}  # expansions, then rollouts
    generator.calls.clear()
    scored(context(generator, value_fn=outcome, budget_tokens=400, temperature=0.7))
    assert {call["temperature"] for call in generator.calls} == {0.7}  # no step temperature: one temperature


def test_one_algorithm_object_runs_many_searches_alike(order_of_operations, context, fake):
    """No search state lives on the algorithm: the same MCTS object searching twice grows the same tree."""
    _, value = order_of_operations
    searcher = MCTS(num_children=2)
    first, second = (searcher(context(fake(order_of_operations[0].table), value_fn=value, budget_tokens=150))
                     for _ in range(2))
    assert [(n.step, n.visits, n.value) for n in first.root.nodes()] == [
        (n.step, n.visits, n.value) for n in second.root.nodes()]
