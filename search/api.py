"""`solve`: one problem, one search method, a token budget -> the answer, its path, the tokens spent and the tree.

Every method runs through a `SearchContext` (search/tree.py), so the same counter measures all of them. The tree
exports to JSON (each node: step, prior, visits, value, verdict; the chosen path marked) and loads back.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from rewards.math_answer import grade_answer
from search.baselines import beam_search, best_of_n, dvts, greedy, self_consistency, weighted_best_of_n
from search.batching import map_concurrently
from search.generator import StepGenerator, TokenCounter, split_steps
from search.tree import Node, SearchContext, ValueFn, Verifier, check_mcts_options, mcts

__all__ = ["METHODS", "SearchResult", "solve", "method_options", "check_options", "solve_many", "verifier_for",
           "tree_to_dict", "tree_from_dict"]

METHODS: dict[str, Callable[..., tuple[Node, Node | None, float | None]]] = {
    "mcts": mcts, "greedy": greedy, "self_consistency": self_consistency, "best_of_n": best_of_n,
    "weighted_best_of_n": weighted_best_of_n, "beam": beam_search, "dvts": dvts,
}
# Options every method shares; the rest go to the method itself.
_CONTEXT_OPTIONS = {f.name for f in dataclasses.fields(SearchContext)} - {
    "generator", "prompt_ids", "problem", "value_fn", "verifier", "budget_tokens", "counter"}


def method_options(method: str) -> list[str]:
    """The options `solve` takes for a method: the shared SearchContext ones and the method's own."""
    own = [name for name in inspect.signature(METHODS[method]).parameters if name != "ctx"]
    return sorted(_CONTEXT_OPTIONS | set(own))


def check_options(method: str, options: dict[str, Any]) -> None:
    """Raise ValueError naming the method and the options it lacks (and, for mcts, the values and combinations it
    refuses), before any engine starts."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: one of {sorted(METHODS)}")
    unknown = sorted(set(options) - set(method_options(method)))
    if unknown:
        raise ValueError(f"{method} has no option {', '.join(unknown)}: its options are "
                         f"{', '.join(method_options(method))}")
    if method == "mcts":
        check_mcts_options(**options)


@dataclass
class SearchResult:
    method: str
    answer: str | None  # the chosen solution's last \boxed{}; None when no solution was finished
    steps: list[str]  # the chosen solution, step by step
    value: float | None  # the chosen solution's value (MCTS, reward models) or vote share (self-consistency)
    correct: bool | None  # the verifier's verdict on the chosen solution, where a verifier or gold was given
    tokens: TokenCounter
    tree: Node
    chosen: Node | None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "answer": self.answer, "steps": self.steps, "value": self.value,
                "correct": self.correct, "tokens": self.tokens.to_dict(), "tree": tree_to_dict(self.tree, self.chosen)}

    def summary(self) -> dict[str, Any]:
        """What a batch of searches reports back (no tree: trees can be large): answer, steps, value, verdict,
        tokens."""
        return {"method": self.method, "answer": self.answer, "steps": self.steps, "value": self.value,
                "correct": self.correct, "tokens": self.tokens.to_dict()}

    def to_json(self, **dumps_kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **dumps_kwargs)

    def to_html(self, title: str = "search tree") -> str:
        """A self-contained page to open in a browser (search/html.py): every node, the chosen path marked."""
        from search.html import tree_html

        return tree_html(self.to_dict(), title)


def verifier_for(gold: object) -> Verifier:
    """A verifier from the gold answer, with the grader training pays with. It calls math-verify in this process,
    which needs the main thread (docs/ARCHITECTURE.md); from threads or actors, grade through rewards' pool."""
    return lambda text: grade_answer(text, gold).correct


def solve(problem: str | Sequence[int], generator: StepGenerator, method: str = "mcts", *,
          budget_tokens: int = 4096, value_fn: ValueFn | None = None, verifier: Verifier | None = None,
          gold: object = None, **options: Any) -> SearchResult:
    """Search for the answer to one problem.

    Args:
        problem: the prompt as text (chat template already applied) or as token ids.
        generator: the policy engine (search.generator.StepGenerator).
        method: a key of METHODS.
        budget_tokens: policy tokens to spend; no generator call starts once they are spent, so the last call may
            pass the budget by up to one call's tokens (`result.tokens.policy` is what was spent).
        value_fn: (problem, steps) -> [0, 1]: the PRM / ORM / value model.
        verifier: solution text -> correct; built from `gold` when only that is given. MCTS uses it in search only
            with `rollout_weight > 0`; otherwise it only grades the result.
        options: SearchContext's (temperature, max_step_tokens, max_tokens, max_depth, seed) and the method's.
    """
    check_options(method, options)
    prompt_ids = generator.encode(problem) if isinstance(problem, str) else list(problem)
    text = problem if isinstance(problem, str) else generator.decode(prompt_ids)
    if verifier is None and gold is not None:
        verifier = verifier_for(gold)
    shared = {name: options.pop(name) for name in list(options) if name in _CONTEXT_OPTIONS}
    ctx = SearchContext(generator, prompt_ids, text, value_fn=value_fn, verifier=verifier,
                        budget_tokens=budget_tokens, **shared)
    tree, chosen, value = METHODS[method](ctx, **options)
    solution = chosen.text() if chosen else ""
    return SearchResult(method=method, answer=chosen.answer if chosen else None, steps=split_steps(solution),
                        value=value, correct=bool(verifier(solution)) if verifier and chosen else None,
                        tokens=ctx.counter, tree=tree, chosen=chosen)


def solve_many(prompts: Sequence[Sequence[int]], generator: StepGenerator, method: str, *, budget_tokens: int,
               seeds: Sequence[int | None], value_fn: ValueFn | None = None, concurrency: int = 1,
               **options: Any) -> list[dict[str, Any]]:
    """`solve` on each prompt, prompt i with seeds[i]; each result's `summary()` (no verifier: the caller grades the
    answers, e.g. in the rewards pool). With `concurrency` > 1 that many searches run at once in threads, their
    engine and reward-model calls merged into batched calls (search/batching.py); each search's samples, tokens
    and answer are its own either way."""
    check_options(method, options)

    def one(generator: StepGenerator, value_fn: ValueFn | None, item: tuple[Sequence[int], int | None]) -> dict:
        prompt, seed = item
        return solve(list(prompt), generator, method, budget_tokens=budget_tokens, value_fn=value_fn, seed=seed,
                     **options).summary()

    items = list(zip(prompts, seeds, strict=True))
    if concurrency <= 1:
        return [one(generator, value_fn, item) for item in items]
    return map_concurrently(one, items, concurrency, generator, value_fn)


_NODE_FIELDS = ("step", "token_ids", "logprob", "prior", "visits", "value_sum", "score", "terminal", "pruned",
                "stop_reason", "answer", "correct")


def tree_to_dict(node: Node, chosen: Node | None = None) -> dict[str, Any]:
    """The tree as plain data: each node's fields, its mean `value`, and `chosen` on the chosen path (root too)."""
    on_path = {id(n) for n in ([node, *chosen.path()] if chosen else [])}

    def export(n: Node) -> dict[str, Any]:
        return {**{name: getattr(n, name) for name in _NODE_FIELDS}, "value": n.value, "chosen": id(n) in on_path,
                "children": [export(c) for c in n.children]}

    return export(node)


def tree_from_dict(data: dict[str, Any]) -> tuple[Node, Node | None]:
    """The tree `tree_to_dict` wrote, and the end of its chosen path (None when nothing was chosen)."""
    node = Node(**{name: data[name] for name in _NODE_FIELDS if name in data})  # older exports lack "pruned"
    chosen = node if data["chosen"] else None
    for child_data in data["children"]:
        child, child_chosen = tree_from_dict(child_data)
        child.parent = node
        node.children.append(child)
        chosen = child_chosen or chosen
    return node, chosen
