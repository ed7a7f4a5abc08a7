"""The methods MCTS has to beat at equal tokens, each called like every search method: `method(ctx) -> Outcome`.

Sampling methods hang each whole solution under the root as one terminal node; step methods (beam search, DVTS)
grow a tree of steps like MCTS's, with each node's PRM score as its value. Every method stops starting generator
calls once the budget is spent (a tree method that has finished no solution by then makes one more, greedy, to
answer: `finish_best_leaf`); the tokens it used are in `ctx.counter`. Options are the classes' fields; none keeps
state between calls.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from search.context import SearchContext, finish_best_leaf
from search.tree import Node, Outcome, backup, check_answer_by, choose_answer

__all__ = ["Greedy", "SelfConsistency", "BestOfN", "WeightedBestOfN", "BeamSearch", "DVTS"]


@dataclass(frozen=True)
class Greedy:
    """One solution at temperature 0."""

    requires: ClassVar[tuple[str, ...]] = ()

    def __call__(self, ctx: SearchContext) -> Outcome:
        root = Node()
        (solution,) = ctx.complete(root, 1, temperature=0.0)
        return Outcome(root, solution, None)


def sample_solutions(ctx: SearchContext, n: int | None, batch: int) -> Node:
    """Whole solutions, `batch` per call, until n are drawn (n=None: until the budget is spent)."""
    root = Node()
    while not ctx.out_of_budget and (n is None or len(root.children) < n):
        ctx.complete(root, batch if n is None else min(batch, n - len(root.children)))
    return root


@dataclass(frozen=True)
class SelfConsistency:
    """Majority vote over the sampled answers (ties go to the answer seen first); value = the winner's vote share.

    Attributes:
        n: solutions to sample (None: as many as the budget buys).
        batch: solutions per generator call.
    """

    n: int | None = None
    batch: int = 4

    requires: ClassVar[tuple[str, ...]] = ()

    def __call__(self, ctx: SearchContext) -> Outcome:
        root = sample_solutions(ctx, self.n, self.batch)
        answered = [c for c in root.children if c.answer is not None]
        if not answered:
            return Outcome(root, None, None)
        vote_key = ctx.task.vote_key
        votes = Counter(vote_key(c.answer) for c in answered)  # Counter keeps first-seen order among ties
        winner, count = votes.most_common(1)[0]
        chosen = next(c for c in answered if vote_key(c.answer) == winner)
        return Outcome(root, chosen, count / len(root.children))


@dataclass(frozen=True)
class BestOfN:
    """The sampled solution the outcome reward model (the value function on the whole solution) scores highest.

    Attributes:
        n: solutions to sample (None: as many as the budget buys).
        batch: solutions per generator call.
    """

    n: int | None = None
    batch: int = 4

    requires: ClassVar[tuple[str, ...]] = ("value_fn",)
    answer_by: ClassVar[str] = "value"

    def __call__(self, ctx: SearchContext) -> Outcome:
        root = sample_solutions(ctx, self.n, self.batch)
        for solution in root.children:
            solution.score = ctx.reward(solution)
            backup(solution, solution.score)
        chosen = choose_answer(root.children, self.answer_by, ctx.task.vote_key)
        return Outcome(root, chosen, chosen.value if chosen else None)


@dataclass(frozen=True)
class WeightedBestOfN(BestOfN):
    """The answer whose solutions' ORM scores sum highest (search-and-learn's weighted best-of-N)."""

    answer_by: ClassVar[str] = "vote"


def beam_step(ctx: SearchContext, frontier: list[Node], width: int, k: int, finished: list[Node]) -> list[Node]:
    """Expand each open node with k steps, score them with the PRM, move terminal ones to `finished` (they hold
    beam slots) and return the best `width - len(finished)` open ones."""
    candidates = []
    for node in frontier:
        if ctx.out_of_budget:
            break
        candidates += ctx.expand(node, k)
    for child in candidates:
        child.score = ctx.reward(child)
        backup(child, child.score)
    finished += [c for c in candidates if c.terminal]
    open_nodes = sorted((c for c in candidates if not c.terminal), key=lambda c: c.score, reverse=True)
    return open_nodes[:max(0, width - len(finished))]


@dataclass(frozen=True)
class BeamSearch:
    """Step-level beam search with a PRM: keep the `beam_width` best partial solutions, each expanded by
    `num_children` sampled steps, until `beam_width` solutions are finished or the budget is spent.

    Attributes:
        beam_width: partial solutions kept.
        num_children: next steps sampled for each.
        answer_by: the answer rule (search.tree.ANSWER_RULES) over the finished solutions.
    """

    beam_width: int = 4
    num_children: int = 4
    answer_by: str = "value"

    requires: ClassVar[tuple[str, ...]] = ("value_fn",)

    def __post_init__(self):
        check_answer_by(self.answer_by)

    def __call__(self, ctx: SearchContext) -> Outcome:
        root, finished = Node(), []
        frontier = [root]
        while frontier and not ctx.out_of_budget:
            frontier = beam_step(ctx, frontier, self.beam_width, self.num_children, finished)
        chosen = choose_answer(finished, self.answer_by, ctx.task.vote_key) or finish_best_leaf(ctx, root, ctx.reward)
        return Outcome(root, chosen, chosen.value if chosen else None)


@dataclass(frozen=True)
class DVTS:
    """Diverse verifier tree search: the root's first steps start independent width-1 beams, advanced in lock step
    so that each gets an equal share of the budget; the answer is voted over their solutions.

    Attributes:
        num_subtrees: first steps sampled, each the root of one beam.
        num_children: next steps sampled for each beam's node.
        answer_by: the answer rule (search.tree.ANSWER_RULES) over the finished solutions.
    """

    num_subtrees: int = 4
    num_children: int = 4
    answer_by: str = "vote"

    requires: ClassVar[tuple[str, ...]] = ("value_fn",)

    def __post_init__(self):
        check_answer_by(self.answer_by)

    def __call__(self, ctx: SearchContext) -> Outcome:
        root, finished = Node(), []
        frontiers = [[node] for node in beam_step(ctx, [root], self.num_subtrees, self.num_subtrees, finished)]
        done: list[list[Node]] = [[] for _ in frontiers]
        while any(frontiers) and not ctx.out_of_budget:
            frontiers = [beam_step(ctx, f, 1, self.num_children, d) if f else [] for f, d in zip(frontiers, done)]
        solutions = finished + [n for d in done for n in d]
        chosen = choose_answer(solutions, self.answer_by, ctx.task.vote_key) or finish_best_leaf(ctx, root, ctx.reward)
        return Outcome(root, chosen, chosen.value if chosen else None)
