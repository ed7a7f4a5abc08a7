"""MCTS over reasoning steps: AlphaZero's loop as OpenR / TS-LLM run it on steps.

A simulation selects a leaf by PUCT, evaluates it (search/evaluation.py: a value function such as a PRM, a rollout
to the end checked by the verifier, a weighted mix, or a scored rollout), expands it with k sampled next steps whose
priors are their probabilities normalised among siblings, and backs the value up the path.

Two departures from AlphaZero, both so that the budget buys new solutions. A confident policy samples the same
step again and again, so k samples often make one or two children, and such a tree is soon finished with budget
left: selection passes over finished subtrees instead of re-scoring their solutions, and a node whose children are
all finished is widened (sampled again for steps it does not have) until sampling brings nothing new. And a search
whose budget ends before any solution is finished completes its best leaf greedily, so it always answers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from search.context import SearchContext, finish_best_leaf
from search.evaluation import Evaluation, StateValue
from search.tree import Node, Outcome, backup, check_answer_by, choose_answer

__all__ = ["puct_c", "puct_score", "SimulationLoop", "MCTS"]


def puct_c(parent: Node, c_init: float = 1.25, c_base: float = 19652) -> float:
    """PUCT's exploration weight c(N) = c_init + log((1 + N + c_base) / c_base), N the parent's visits."""
    return c_init + math.log((1 + parent.visits + c_base) / c_base)


def puct_score(parent: Node, child: Node, c_init: float = 1.25, c_base: float = 19652) -> float:
    """AlphaZero's PUCT: Q + c(N) * P * sqrt(N) / (1 + n) (c(N): `puct_c`). An unvisited child's Q is 0."""
    c = puct_c(parent, c_init, c_base)
    return child.value + c * child.prior * math.sqrt(parent.visits) / (1 + child.visits)


class SimulationLoop:
    """What every MCTS variant shares: simulate from the root until the budget is spent, nothing is left to expand or
    `max_simulations` ran, then answer by `answer_by`, or finish the best leaf when no solution was finished.
    A subclass gives `simulate(ctx, root)`, `evaluation`, `answer_by` and `max_simulations`."""

    def __call__(self, ctx: SearchContext) -> Outcome:
        root = self.search(ctx, Node())
        chosen = (choose_answer(root.nodes(), self.answer_by, ctx.task.vote_key)
                  or finish_best_leaf(ctx, root, lambda node: self.evaluation(ctx, node)))
        return Outcome(root, chosen, chosen.value if chosen else None)

    def search(self, ctx: SearchContext, root: Node) -> Node:
        """Simulate from the root until the budget is spent, nothing is left to expand or `max_simulations` ran."""
        simulations = 0
        while not ctx.out_of_budget and not root.exhausted and simulations < self.max_simulations:
            self.simulate(ctx, root)
            simulations += 1
        return root


@dataclass(frozen=True)
class MCTS(SimulationLoop):
    """PUCT MCTS from the root until the budget is spent or nothing is left to expand: select, evaluate, expand,
    back up.

    Attributes:
        num_children: next steps sampled to expand a leaf (repeats merge, so a leaf may get fewer children).
        evaluation: how a leaf is valued (search/evaluation.py).
        answer_by: the answer rule (search.tree.ANSWER_RULES) over the tree's evaluated solutions.
        c_init, c_base: PUCT's exploration weight (OpenR's values by default).
        max_simulations: a cap on simulations besides the budget.
    """

    num_children: int = 4
    evaluation: Evaluation = field(default_factory=StateValue)
    answer_by: str = "value"
    c_init: float = 1.25
    c_base: float = 19652
    max_simulations: int = 1000

    def __post_init__(self):
        check_answer_by(self.answer_by)

    @property
    def requires(self) -> tuple[str, ...]:
        return self.evaluation.requires

    def simulate(self, ctx: SearchContext, start: Node) -> None:
        """One simulation below `start`: select a leaf, evaluate it, expand it, back its value up."""
        leaf = self.select(start)
        value = self.evaluation(ctx, leaf)
        if not leaf.terminal and not leaf.saturated:
            ctx.expand(leaf, self.num_children)
        backup(leaf, value)

    def select(self, node: Node) -> Node:
        """Descend by PUCT over the children with something left to search (re-selecting a scored solution would
        spend a simulation and learn nothing) to a leaf, or to a node whose every child is exhausted: that one is
        widened, sampled again for steps it does not have yet."""
        while node.children and not node.terminal:
            candidates = [child for child in node.children if not child.exhausted]
            if not candidates:
                break
            node = max(candidates, key=lambda child: puct_score(node, child, self.c_init, self.c_base))
        return node
