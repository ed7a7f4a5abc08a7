"""MCTS with path expansion: a simulation adds a whole path instead of k children.

It descends while a child's PUCT score beats branching off at the node, then samples one step at a time to the end
of the solution, every step kept as a node and valued by the task's value function; the end's value is backed up.
Branching off is a pseudo-child whose prior is the probability the node's children leave unsampled and whose value
is the node's own, so a confident step that keeps failing is abandoned for the rarer ones, and a prefix is never
sampled twice. A step valued at or below `prune_at` (0: the step checker found a false equation) ends its path: no
tokens are spent finishing a solution already wrong, and the next simulation branches off above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from search.context import SearchContext
from search.evaluation import Evaluation, StateValue
from search.mcts import SimulationLoop, puct_c
from search.tree import Node, backup, check_answer_by

__all__ = ["SATURATED_MASS", "unsampled_mass", "PathMCTS"]

SATURATED_MASS = 0.01  # a node whose children hold all but this much probability is not branched off


def unsampled_mass(node: Node) -> float:
    """The probability that a new sample of the node's next step is none of its children's steps."""
    return max(0.0, 1.0 - sum(math.exp(child.logprob) for child in node.children))


@dataclass(frozen=True)
class PathMCTS(SimulationLoop):
    """MCTS whose simulations sample whole paths step by step (see the module).

    Attributes:
        answer_by: the answer rule (search.tree.ANSWER_RULES) over the tree's evaluated solutions.
        prune_at: a step valued at or below it ends its path (None: no pruning).
        c_init, c_base: PUCT's exploration weight.
        max_simulations: a cap on simulations besides the budget.
    """

    answer_by: str = "value"
    prune_at: float | None = None
    c_init: float = 1.25
    c_base: float = 19652
    max_simulations: int = 1000

    evaluation: ClassVar[Evaluation] = StateValue()  # every step of a path is valued by the value function
    requires: ClassVar[tuple[str, ...]] = StateValue.requires

    def __post_init__(self):
        check_answer_by(self.answer_by)

    def simulate(self, ctx: SearchContext, root: Node) -> None:
        """Select where to branch off, sample a path from there step by step to the end (or to a pruned step, or
        until the budget is spent), back up the value where it stopped."""
        node = self.select_branch(ctx, root)
        while not node.terminal and not node.pruned and not ctx.out_of_budget:
            node = ctx.step(node)
            node.parent.saturated = unsampled_mass(node.parent) < SATURATED_MASS
            if self.prune_at is not None and self.evaluation(ctx, node) <= self.prune_at:
                node.pruned = True
                break
        backup(node, self.evaluation(ctx, node))

    def select_branch(self, ctx: SearchContext, node: Node) -> Node:
        """Descend by PUCT, with absolute step probabilities as priors, while the best child with something left
        to search scores above branching off at the node (a new step: prior the unsampled mass, value the node's
        own); return the node to branch off at."""
        while not node.terminal:
            explore = puct_c(node, self.c_init, self.c_base) * math.sqrt(node.visits)

            def score(child: Node) -> float:
                return child.value + explore * math.exp(child.logprob) / (1 + child.visits)

            branch = (-math.inf if node.saturated else
                      (self.evaluation(ctx, node) if node.parent else 0.0) + explore * unsampled_mass(node))
            best = max((child for child in node.children if not child.exhausted), default=None, key=score)
            if best is None or branch >= score(best):
                return node
            node = best
        return node
