"""search.tree: PUCT, backup, terminal detection, expansion and priors, MCTS and Gumbel sequential halving."""

import math
import random

import pytest

from search.generator import STEP_DELIMITER, split_steps
from search.tree import MCTS, Node, SearchContext, backup, choose_answer, is_terminal, mcts, puct_score


def context(generator, value_fn=None, **options):
    return SearchContext(generator, generator.encode(generator.prompt), generator.prompt, value_fn=value_fn, **options)


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
def test_puct_scores_and_picks_what_the_formula_says(value_sum_a, score_a, score_b, picked, fake):
    parent, a, b = two_children(value_sum_a)
    assert puct_score(parent, a) == pytest.approx(score_a, abs=1e-6)
    assert puct_score(parent, b) == pytest.approx(score_b, abs=1e-6)
    searcher = MCTS(context(fake({}), value_fn=lambda p, s: 0.0))
    assert searcher.select(parent).step == picked


def test_backup_adds_a_visit_and_the_value_along_the_path():
    root = Node()
    a = Node(step="a", parent=root)
    b = Node(step="b", parent=a)
    root.children, a.children = [a], [b]
    backup(b, 0.5)
    backup(a, 1.0)
    assert (b.visits, b.value_sum) == (1, 0.5)
    assert (a.visits, a.value_sum, a.value) == (2, 1.5, 0.75)
    assert (root.visits, root.value_sum) == (2, 1.5)
    assert not a.exhausted  # b is not terminal
    b.terminal = True
    backup(b, 0.5)
    assert b.exhausted and not a.exhausted  # a may still be widened: sampled again for steps it does not have
    a.saturated = root.saturated = True
    backup(b, 0.5)
    assert b.exhausted and a.exhausted and root.exhausted


@pytest.mark.parametrize("step, stop_reason, terminal", [
    ("The answer is \\boxed{14}.\n", "step", True),
    ("Then 2+12=14.\n", "step", False),
    ("Then 2+12=14.", "eos", True),
    ("Then 2+12=1", "length", True),
    ("An empty box \\boxed{} is no answer.\n", "step", False),
])
def test_terminal_detection(step, stop_reason, terminal):
    assert is_terminal(step, stop_reason) is terminal


def test_expansion_merges_repeated_steps_and_normalises_priors(order_of_operations):
    generator, _ = order_of_operations
    ctx = context(generator)
    root = Node()
    children = ctx.expand(root, 4)  # the fake samples A, B, A, B
    assert [c.step for c in children] == ["Add first: 2+3=5.\n", "Multiply first: 3*4=12.\n"]
    assert [c.prior for c in children] == pytest.approx([0.6, 0.4])
    assert [c.logprob for c in children] == pytest.approx([math.log(0.6), math.log(0.4)])
    assert ctx.counter.policy == generator.generated == 2 * (18 + 24)  # repeats were generated, so they count
    leaf = ctx.expand(ctx.expand(children[1], 2)[0], 1)[0]
    assert leaf.terminal and leaf.answer == "14" and leaf.stop_reason == "eos"
    assert leaf.text() == "Multiply first: 3*4=12.\nThen 2+12=14.\nThe answer is \\boxed{14}."
    assert ctx.prompt_ids + leaf.ids() == generator.encode(generator.prompt + leaf.text())


def test_nodes_past_max_depth_are_terminal(fake):
    ctx = context(fake({}, default=[("Keep going.", 1.0)]), max_depth=2)
    first = ctx.expand(Node(), 1)[0]
    second = ctx.expand(first, 1)[0]
    assert not first.terminal and second.terminal and second.answer is None


def test_mcts_with_a_perfect_value_finds_the_answer_the_most_probable_steps_miss(order_of_operations):
    generator, value = order_of_operations
    ctx = context(generator, value_fn=value, budget_tokens=150)
    root, chosen, chosen_value = mcts(ctx, num_children=2)
    assert chosen.answer == "14" and chosen_value == 1.0
    assert root.children[0].prior > root.children[1].prior  # the prior prefers the wrong first step...
    assert root.children[1].visits > root.children[0].visits  # ...the search visits the right one more
    assert not root.exhausted and ctx.counter.policy >= 150  # ...and the budget ends before the tree does


def test_a_small_tree_is_searched_to_its_end_within_budget(order_of_operations):
    generator, value = order_of_operations
    ctx = context(generator, value_fn=value, budget_tokens=1000)
    root, chosen, _ = mcts(ctx, num_children=2)
    assert chosen.answer == "14" and ctx.counter.policy < 1000
    # every node sampled until it brought nothing new; each solution scored once, then passed over
    assert root.exhausted and all(n.saturated for n in root.nodes() if not n.terminal)
    assert [n.visits for n in root.nodes() if n.terminal] == [1, 1]


def test_mcts_by_verified_rollouts_alone_finds_the_answer(order_of_operations):
    generator, _ = order_of_operations
    ctx = context(generator, verifier=lambda text: "\\boxed{14}" in text, budget_tokens=400)
    root, chosen, _ = mcts(ctx, num_children=2, rollout_weight=1.0)
    assert chosen.answer == "14" and chosen.correct is True
    rollouts = [c for c in generator.calls if c["k"] == 1]
    assert rollouts and ctx.counter.policy == generator.generated  # rollout tokens are policy tokens too


def test_mcts_refuses_to_run_without_an_evaluation(order_of_operations):
    generator, _ = order_of_operations
    with pytest.raises(ValueError, match="value_fn"):
        MCTS(context(generator))
    with pytest.raises(ValueError, match="verifier"):
        MCTS(context(generator, value_fn=lambda p, s: 0.5), rollout_weight=0.5)


# Four first steps; only the third, with prior .2, leads to the right answer.
FOUR_WAYS = {
    (): [("Way A.", 0.4), ("Way B.", 0.3), ("Way C.", 0.2), ("Way D.", 0.1)],
    **{(f"Way {w}.",): [(f"The answer is \\boxed{{{w}}}.", 1.0)] for w in "ABCD"},
}


def test_sequential_halving_spends_the_simulations_phase_by_phase_and_keeps_the_best(fake, value_knowing):
    generator = fake(FOUR_WAYS)
    ctx = context(generator, value_fn=value_knowing(("Way C.", "The answer is \\boxed{C}.")), budget_tokens=10_000)
    searcher = MCTS(ctx, num_children=4)
    root = Node()
    action = searcher.sequential_halving(root, num_simulations=16, top_k=4, rng=random.Random(0))
    # 2 phases: 4 steps x 16 // (2 * 4) = 2 simulations each, then the best 2 x 16 // (2 * 2) = 4 more each.
    assert sorted(c.visits for c in root.children) == [2, 2, 6, 6]
    assert searcher.simulations == sum(c.visits for c in root.children) == 16
    assert action.step == "Way C.\n" and action.visits == 6


def test_gumbel_mcts_decides_step_by_step(order_of_operations):
    generator, value = order_of_operations
    ctx = context(generator, value_fn=value, budget_tokens=400)
    root, chosen, _ = mcts(ctx, num_children=2, selection="gumbel", simulations_per_step=8, top_k=2)
    assert chosen.answer == "14"
    assert [n.step.removesuffix(STEP_DELIMITER) for n in chosen.path()] == [
        "Multiply first: 3*4=12.", "Then 2+12=14.", "The answer is \\boxed{14}."]


def test_answer_selection_by_value_visits_and_vote():
    root = Node()
    spec = [("7", 0.9, 1), ("9", 0.6, 3), ("9.0", 0.5, 2), ("11", 0.1, 0)]  # "9.0" votes with "9"; "11" unvisited
    for answer, value, visits in spec:
        root.children.append(Node(parent=root, terminal=True, answer=answer, visits=visits, value_sum=value * visits))
    assert choose_answer(root.nodes(), "value").answer == "7"
    assert choose_answer(root.nodes(), "visits").answer == "9"
    assert choose_answer(root.nodes(), "vote").answer == "9"  # .6 + .5 beats .9
    with pytest.raises(ValueError):
        choose_answer(root.nodes(), "loudest")


def test_a_mixed_evaluation_weighs_the_value_fn_against_the_verified_rollout(order_of_operations):
    generator, _ = order_of_operations
    ctx = context(generator, value_fn=lambda p, s: 0.2, verifier=lambda text: "\\boxed{14}" in text)
    searcher = MCTS(ctx, num_children=2, rollout_weight=0.25)
    right = ctx.expand(ctx.expand(ctx.expand(Node(), 2)[1], 1)[0], 1)[0]
    assert right.answer == "14"
    assert searcher.evaluate(right) == pytest.approx(0.75 * 0.2 + 0.25 * 1.0) and right.correct is True
    calls = ctx.counter.reward_calls
    assert searcher.evaluate(right) == pytest.approx(0.4) and ctx.counter.reward_calls == calls  # evaluated once


def test_steps_split_at_the_delimiter_and_join_back():
    text = "First.\nSecond.\nThe answer is \\boxed{3}."
    assert split_steps(text) == ["First.\n", "Second.\n", "The answer is \\boxed{3}."]
    assert "".join(split_steps(text)) == text and split_steps("") == []


# Two first steps of equal prior; each leads in two more steps to its own answer; "B" is right.
TWO_WAYS = {
    (): [("Way A.", 0.5), ("Way B.", 0.5)],
    **{(f"Way {w}.",): [(f"Then {w}.", 1.0)] for w in "AB"},
    **{(f"Way {w}.", f"Then {w}."): [(f"The answer is \\boxed{{{w}}}.", 1.0)] for w in "AB"},
}


def test_a_search_that_runs_out_of_budget_unfinished_answers_from_its_best_leaf_greedily(fake, value_knowing):
    generator = fake(TWO_WAYS)
    ctx = context(generator, value_fn=value_knowing(("Way B.", "Then B.", "The answer is \\boxed{B}.")),
                  budget_tokens=20)  # the root's expansion (14 tokens) and one more: A, evaluated at 0
    root, chosen, value = mcts(ctx, num_children=2)
    a, b = root.children
    assert a.value == 0.0 and a.visits == 1 and b.score is None and ctx.counter.policy_calls == 3  # b: never simulated
    # no solution was finished: the best leaf is B (unvisited, so valued at its parent's value, above A's 0),
    # finished at temperature 0 in one call past the budget, evaluated and backed up
    assert chosen.parent is b and chosen.answer == "B" and value == 1.0 and b.visits == 1
    assert generator.calls[-1]["k"] == 1 and ctx.counter.policy == generator.generated > 20


def test_selection_passes_over_finished_subtrees_so_every_simulation_expands(fake, value_knowing):
    generator = fake(FOUR_WAYS)
    ctx = context(generator, value_fn=value_knowing(("Way C.", "The answer is \\boxed{C}.")), budget_tokens=10_000)
    searcher = MCTS(ctx, num_children=4)
    root = searcher.search(Node())
    # 1 simulation expands the root, 4 expand its children, 4 score the solutions below them; then each node whose
    # children are all finished is widened once (4 + 1), brings nothing new and is saturated. No solution is
    # scored twice, and the search ends with the tree.
    assert root.exhausted and searcher.simulations == 1 + 4 + 4 + 4 + 1
    assert all(n.visits == 1 for n in root.nodes() if n.terminal)
    assert all(n.saturated for n in root.nodes() if not n.terminal)


def test_widening_finds_a_step_the_first_samples_missed(fake, value_knowing):
    generator = fake({(): [("Way A.", 0.5), ("Way B.", 0.3), ("Way C.", 0.2)],
                      **{(f"Way {w}.",): [(f"The answer is \\boxed{{{w}}}.", 1.0)] for w in "ABC"}})
    ctx = context(generator, value_fn=value_knowing(("Way C.", "The answer is \\boxed{C}.")), budget_tokens=10_000)
    root, chosen, _ = mcts(ctx, num_children=2)
    # 2 samples a call: A and B first; once both are finished the root is sampled again (C, A), then once more
    # (B, C: nothing new, saturated)
    assert [c.step for c in root.children] == ["Way A.\n", "Way B.\n", "Way C.\n"]
    assert generator.step_calls[generator.prompt] == 3 and root.saturated
    assert chosen.answer == "C"


def test_scored_rollouts_value_a_node_by_its_sampled_finish_and_keep_the_finish_as_a_candidate(order_of_operations):
    generator, _ = order_of_operations

    def outcome(problem, steps):  # an outcome scorer: 1 for a finished solution answering 14, else 0
        return 1.0 if steps and "\\boxed{14}" in steps[-1] else 0.0

    ctx = context(generator, value_fn=outcome, budget_tokens=400)
    root, chosen, value = mcts(ctx, num_children=2, scored_rollouts=True)
    assert chosen.answer == "14" and value == 1.0
    finishes = [n for n in root.nodes() if n.terminal and n.parent is not None and len(split_steps(n.step)) > 1]
    assert finishes  # whole finishes hang under the nodes they valued, one visit each, scored by the value_fn
    for finish in finishes:
        assert finish.visits == 1 and finish.score == outcome("", split_steps(finish.text())) and finish.exhausted
        assert finish.parent.score == finish.score  # the node's value is its finish's score
    assert ctx.counter.policy == generator.generated  # the rollouts' tokens are policy tokens too
    with pytest.raises(ValueError, match="one of them"):
        MCTS(context(generator, value_fn=outcome, verifier=lambda text: True), scored_rollouts=True,
             rollout_weight=0.5)
    with pytest.raises(ValueError, match="value_fn"):
        MCTS(context(generator), scored_rollouts=True)


def test_expansions_sample_at_the_step_temperature_and_rollouts_at_the_temperature(order_of_operations):
    generator, _ = order_of_operations

    def outcome(problem, steps):
        return 1.0 if steps and "\\boxed{14}" in steps[-1] else 0.0

    mcts(context(generator, value_fn=outcome, budget_tokens=400, temperature=0.7, step_temperature=1.3),
         num_children=2, scored_rollouts=True)
    temperatures = {(call["step"], call["temperature"]) for call in generator.calls}
    assert temperatures == {(True, 1.3), (False, 0.7)}  # expansions, then rollouts
    generator.calls.clear()
    mcts(context(generator, value_fn=outcome, budget_tokens=400, temperature=0.7), num_children=2,
         scored_rollouts=True)
    assert {call["temperature"] for call in generator.calls} == {0.7}  # no step temperature: one temperature


def test_path_expansion_keeps_every_sampled_step_and_stops_at_a_pruned_one(order_of_operations):
    generator, value = order_of_operations  # the value knows the answer: 0 on "Add first", 1 on the right path
    ctx = context(generator, value_fn=value, budget_tokens=10_000)
    searcher = MCTS(ctx, expansion="path", prune_at=0.0)
    root = searcher.search(Node())
    add, multiply = root.children
    # the first path stops at its first step, valued 0: no tokens are spent finishing a wrong solution; the next
    # branches off at the root (nothing else is open there) and samples the right path to its end, step by step
    assert add.step == "Add first: 2+3=5.\n" and add.pruned and add.children == [] and add.value == 0.0
    assert [n.step for n in multiply.nodes()] == ["Multiply first: 3*4=12.\n", "Then 2+12=14.\n",
                                                  "The answer is \\boxed{14}."]
    assert all(n.score == 1.0 and n.visits == 1 for n in multiply.nodes())
    # both steps the root can take are in the tree, and so is every step below: the search ends with budget left
    assert root.exhausted and searcher.simulations == 2 and ctx.counter.policy_calls == 4
    assert ctx.counter.policy == generator.generated == sum(len(n.token_ids) for n in root.nodes())


def test_path_expansion_branches_off_where_a_confident_step_keeps_failing(order_of_operations):
    generator, _ = order_of_operations

    def outcome(problem, steps):  # no pruning: only a finished solution answering 14 is worth anything
        return 1.0 if steps and "\\boxed{14}" in steps[-1] else 0.0

    root, chosen, value = mcts(context(generator, value_fn=outcome, budget_tokens=10_000), expansion="path")
    # the first path follows the likelier step (prior .6) to the wrong answer; then branching off at the root
    # (prior .4, the mass the root's child leaves unsampled, value 0) beats that child (Q 0, prior .6, one visit)
    assert chosen.answer == "14" and value == 1.0
    add, multiply = root.children
    assert add.visits == 1 and add.value == 0.0 and multiply.value == 1.0
    assert [call["k"] for call in generator.calls] == [1] * 6  # one step a call: 3 steps a path, 2 paths


def test_path_expansion_refuses_what_it_does_not_combine_with(order_of_operations):
    generator, value = order_of_operations
    with pytest.raises(ValueError, match="neither"):
        MCTS(context(generator, value_fn=value), expansion="path", scored_rollouts=True)
    with pytest.raises(ValueError, match="selection='puct'"):
        mcts(context(generator, value_fn=value), expansion="path", selection="gumbel")
    with pytest.raises(ValueError, match="unknown expansion"):
        MCTS(context(generator, value_fn=value), expansion="leaves")
