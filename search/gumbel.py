"""Gumbel MCTS: decide one step at a time by Gumbel top-k sampling with sequential halving (Danihelka et al. 2022,
"Policy improvement by planning with Gumbel"), PUCT MCTS below the step being decided.

Plain PUCT is known not to improve monotonically with budget on LLM steps. Here each step is chosen at a root of
its own: top_k distinct next steps are sampled by Gumbel noise + log prior, then in ceil(log2 top_k) phases each
remaining step gets an equal share of the simulations and the better half is kept by g + logit + sigma(q). The
search then descends into the winner and decides the next step the same way.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from search.context import SearchContext, finish_best_leaf
from search.mcts import MCTS
from search.tree import Node, Outcome, choose_answer

__all__ = ["GumbelMCTS"]


@dataclass(frozen=True)
class GumbelMCTS:
    """Sequential halving at each step, `puct`'s simulations below it.

    Attributes:
        puct: the MCTS whose simulations value the candidate steps (its expansion width, evaluation and answer
            rule are this search's).
        simulations_per_step: the simulations one step's halving spends.
        top_k: candidate steps a halving starts from.
        c_visit, c_scale: Gumbel's sigma(q) = (c_visit + max visits) * c_scale * q.
    """

    puct: MCTS = field(default_factory=MCTS)
    simulations_per_step: int = 16
    top_k: int = 4
    c_visit: float = 50.0
    c_scale: float = 1.0

    @property
    def requires(self) -> tuple[str, ...]:
        return self.puct.requires

    def __call__(self, ctx: SearchContext) -> Outcome:
        root = Node()
        reached = self.search(ctx, root)
        how, key = self.puct.answer_by, ctx.task.vote_key
        chosen = (choose_answer(reached.nodes(), how, key) or choose_answer(root.nodes(), how, key)
                  or finish_best_leaf(ctx, root, lambda node: self.puct.evaluation(ctx, node)))
        return Outcome(root, chosen, chosen.value if chosen else None)

    def search(self, ctx: SearchContext, root: Node) -> Node:
        """Decide one step at a time by sequential halving, then descend into it; returns where it stopped."""
        rng = random.Random(ctx.seed)
        node = root
        while not node.terminal and not ctx.out_of_budget:
            node = self.sequential_halving(ctx, node, rng)
        if node.terminal and node.visits == 0:  # a lone child is taken unsimulated: evaluate it so it can be chosen
            self.puct.simulate(ctx, node)
        return node

    def sequential_halving(self, ctx: SearchContext, root: Node, rng: random.Random) -> Node:
        """The step to take at `root`: its children's best by Gumbel sequential halving."""
        if not root.children:
            ctx.expand(root, self.puct.num_children)
        gumbel = {id(c): -math.log(-math.log(max(rng.random(), 1e-12))) for c in root.children}

        def score(c: Node) -> float:
            return gumbel[id(c)] + math.log(c.prior) + self.sigma(root, c)

        remaining = sorted(root.children, key=score, reverse=True)[:self.top_k]  # no visits yet: sigma is 0
        phases = max(1, math.ceil(math.log2(len(remaining))))
        while len(remaining) > 1 and not ctx.out_of_budget:
            share = max(1, self.simulations_per_step // (phases * len(remaining)))
            for child in remaining:
                for _ in range(share):
                    if ctx.out_of_budget:
                        break
                    self.puct.simulate(ctx, child)
            remaining = sorted(remaining, key=score, reverse=True)[:(len(remaining) + 1) // 2]
        return max(remaining, key=score)

    def sigma(self, root: Node, child: Node) -> float:
        """Gumbel's monotone transform of a value in [0, 1], growing with the root's most visited child."""
        max_visits = max(c.visits for c in root.children)
        return (self.c_visit + max_visits) * self.c_scale * child.value if child.visits else 0.0
