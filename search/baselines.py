"""The methods MCTS has to beat at equal tokens, with MCTS's call shape: `method(ctx, **options) -> (root, chosen
node, value)`.

Sampling methods hang each whole solution under the root as one terminal node; step methods (beam search, DVTS)
grow a tree of steps like MCTS's, with each node's PRM score as its value. Every method stops starting generator
calls once the budget is spent (a tree method that has finished no solution by then makes one more, greedy, to
answer: `finish_best_leaf`); the tokens it used are in `ctx.counter`.
"""

from __future__ import annotations

from collections import Counter

from search.tree import Node, SearchContext, answer_key, backup, choose_answer, finish_best_leaf

__all__ = ["greedy", "self_consistency", "best_of_n", "weighted_best_of_n", "beam_search", "dvts"]

Outcome = tuple[Node, Node | None, float | None]  # (root of the tree, the chosen solution, its value)


def greedy(ctx: SearchContext) -> Outcome:
    """One solution at temperature 0."""
    root = Node()
    (solution,) = ctx.complete(root, 1, temperature=0.0)
    return root, solution, None


def _sample_solutions(ctx: SearchContext, n: int | None, batch: int) -> Node:
    """Whole solutions, `batch` per call, until n are drawn (n=None: until the budget is spent)."""
    root = Node()
    while not ctx.out_of_budget and (n is None or len(root.children) < n):
        ctx.complete(root, batch if n is None else min(batch, n - len(root.children)))
    return root


def self_consistency(ctx: SearchContext, *, n: int | None = None, batch: int = 4) -> Outcome:
    """Majority vote over the sampled answers (ties go to the answer seen first); value = the winner's vote share."""
    root = _sample_solutions(ctx, n, batch)
    answered = [c for c in root.children if c.answer is not None]
    if not answered:
        return root, None, None
    votes = Counter(answer_key(c.answer) for c in answered)  # Counter keeps first-seen order among ties
    winner, count = votes.most_common(1)[0]
    chosen = next(c for c in answered if answer_key(c.answer) == winner)
    return root, chosen, count / len(root.children)


def _scored_solutions(ctx: SearchContext, n: int | None, batch: int) -> Node:
    root = _sample_solutions(ctx, n, batch)
    for solution in root.children:
        solution.score = ctx.reward(solution)
        backup(solution, solution.score)
    return root


def best_of_n(ctx: SearchContext, *, n: int | None = None, batch: int = 4) -> Outcome:
    """The sampled solution the outcome reward model (`value_fn` on the whole solution) scores highest."""
    root = _scored_solutions(ctx, n, batch)
    chosen = choose_answer(root.children, "value")
    return root, chosen, chosen.value if chosen else None


def weighted_best_of_n(ctx: SearchContext, *, n: int | None = None, batch: int = 4) -> Outcome:
    """The answer whose solutions' ORM scores sum highest (search-and-learn's weighted best-of-N)."""
    root = _scored_solutions(ctx, n, batch)
    chosen = choose_answer(root.children, "vote")
    return root, chosen, chosen.value if chosen else None


def _beam_step(ctx: SearchContext, frontier: list[Node], width: int, k: int, finished: list[Node]) -> list[Node]:
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


def beam_search(ctx: SearchContext, *, beam_width: int = 4, num_children: int = 4, answer_by: str = "value",
                ) -> Outcome:
    """Step-level beam search with a PRM: keep the `beam_width` best partial solutions, each expanded by
    `num_children` sampled steps, until `beam_width` solutions are finished or the budget is spent."""
    root, finished = Node(), []
    frontier = [root]
    while frontier and not ctx.out_of_budget:
        frontier = _beam_step(ctx, frontier, beam_width, num_children, finished)
    chosen = choose_answer(finished, answer_by) or finish_best_leaf(ctx, root, ctx.reward)
    return root, chosen, chosen.value if chosen else None


def dvts(ctx: SearchContext, *, num_subtrees: int = 4, num_children: int = 4, answer_by: str = "vote") -> Outcome:
    """Diverse verifier tree search: the root's first steps start independent width-1 beams, advanced in lock step
    so that each gets an equal share of the budget; the answer is voted over their solutions."""
    root, finished = Node(), []
    frontiers = [[node] for node in _beam_step(ctx, [root], num_subtrees, num_subtrees, finished)]
    done: list[list[Node]] = [[] for _ in frontiers]
    while any(frontiers) and not ctx.out_of_budget:
        frontiers = [_beam_step(ctx, f, 1, num_children, d) if f else [] for f, d in zip(frontiers, done)]
    solutions = finished + [n for d in done for n in d]
    chosen = choose_answer(solutions, answer_by) or finish_best_leaf(ctx, root, ctx.reward)
    return root, chosen, chosen.value if chosen else None
