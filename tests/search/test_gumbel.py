"""search.gumbel: sequential halving at a step, and a search that decides one step at a time."""

import random

from search.generator import STEP_DELIMITER
from search.gumbel import GumbelMCTS
from search.mcts import MCTS
from search.tree import Node

# Four first steps; only the third, with prior .2, leads to the right answer.
FOUR_WAYS = {
    (): [("Way A.", 0.4), ("Way B.", 0.3), ("Way C.", 0.2), ("Way D.", 0.1)],
    **{(f"Way {w}.",): [(f"The answer is \\boxed{{{w}}}.", 1.0)] for w in "ABCD"},
}


def test_sequential_halving_spends_the_simulations_phase_by_phase_and_keeps_the_best(fake, value_knowing, context):
    generator = fake(FOUR_WAYS)
    ctx = context(generator, value_fn=value_knowing(("Way C.", "The answer is \\boxed{C}.")), budget_tokens=10_000)
    searcher = GumbelMCTS(MCTS(num_children=4), simulations_per_step=16, top_k=4)
    root = Node()
    action = searcher.sequential_halving(ctx, root, random.Random(0))
    # 2 phases: 4 steps x 16 // (2 * 4) = 2 simulations each, then the best 2 x 16 // (2 * 2) = 4 more each.
    # (Each simulation backs up through the root once.)
    assert sorted(c.visits for c in root.children) == [2, 2, 6, 6]
    assert root.visits == sum(c.visits for c in root.children) == 16
    assert action.step == "Way C.\n" and action.visits == 6


def test_gumbel_mcts_decides_step_by_step(order_of_operations, context):
    generator, value = order_of_operations
    ctx = context(generator, value_fn=value, budget_tokens=400)
    root, chosen, _ = GumbelMCTS(MCTS(num_children=2), simulations_per_step=8, top_k=2)(ctx)
    assert chosen.answer == "14"
    assert [n.step.removesuffix(STEP_DELIMITER) for n in chosen.path()] == [
        "Multiply first: 3*4=12.", "Then 2+12=14.", "The answer is \\boxed{14}."]
