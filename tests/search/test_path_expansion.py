"""search.path_expansion: whole paths sampled step by step, pruned at a step valued 0, branching off where a
confident step keeps failing."""

import pytest

from search.methods import build_mcts
from search.path_expansion import PathMCTS
from search.tree import Node


def test_path_expansion_keeps_every_sampled_step_and_stops_at_a_pruned_one(order_of_operations, context):
    generator, value = order_of_operations  # the value knows the answer: 0 on "Add first", 1 on the right path
    ctx = context(generator, value_fn=value, budget_tokens=10_000)
    root = PathMCTS(prune_at=0.0).search(ctx, Node())
    add, multiply = root.children
    # the first path stops at its first step, valued 0: no tokens are spent finishing a wrong solution; the next
    # branches off at the root (nothing else is open there) and samples the right path to its end, step by step
    assert add.step == "Add first: 2+3=5.\n" and add.pruned and add.children == [] and add.value == 0.0
    assert [n.step for n in multiply.nodes()] == ["Multiply first: 3*4=12.\n", "Then 2+12=14.\n",
                                                  "The answer is \\boxed{14}."]
    assert all(n.score == 1.0 and n.visits == 1 for n in multiply.nodes())
    # both steps the root can take are in the tree, and so is every step below: the search ends with budget left
    # (two simulations, each backed up through the root once)
    assert root.exhausted and root.visits == 2 and ctx.counter.policy_calls == 4
    assert ctx.counter.policy == generator.generated == sum(len(n.token_ids) for n in root.nodes())


def test_path_expansion_branches_off_where_a_confident_step_keeps_failing(order_of_operations, context):
    generator, _ = order_of_operations

    def outcome(problem, steps):  # no pruning: only a finished solution answering 14 is worth anything
        return 1.0 if steps and "\\boxed{14}" in steps[-1] else 0.0

    root, chosen, value = build_mcts(expansion="path")(context(generator, value_fn=outcome, budget_tokens=10_000))
    # the first path follows the likelier step (prior .6) to the wrong answer; then branching off at the root
    # (prior .4, the mass the root's child leaves unsampled, value 0) beats that child (Q 0, prior .6, one visit)
    assert chosen.answer == "14" and value == 1.0
    add, multiply = root.children
    assert add.visits == 1 and add.value == 0.0 and multiply.value == 1.0
    assert [call["k"] for call in generator.calls] == [1] * 6  # one step a call: 3 steps a path, 2 paths


def test_path_expansion_refuses_what_it_does_not_combine_with():
    with pytest.raises(ValueError, match="neither"):
        build_mcts(expansion="path", scored_rollouts=True)
    with pytest.raises(ValueError, match="selection='puct'"):
        build_mcts(expansion="path", selection="gumbel")
    with pytest.raises(ValueError, match="unknown expansion"):
        build_mcts(expansion="leaves")
    assert isinstance(build_mcts(expansion="path", prune_at=0.0), PathMCTS)
