"""The search tree: nodes that are reasoning steps, the backup every tree search shares, the rules that pick the
solution to answer with, and the tree as plain data.

Every algorithm returns an `Outcome`: the root of the tree it grew, the solution it chose and that solution's value.
The SearchContext that grows the tree (its only code that calls the engine) is in search/context.py.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple

__all__ = ["Node", "Outcome", "backup", "step_priors", "ANSWER_RULES", "check_answer_by", "choose_answer",
           "answer_candidates", "values_tied", "path_logprob", "tree_to_dict"]


@dataclass(eq=False)
class Node:
    """One reasoning step; the root is the empty step before the first."""

    step: str = ""
    token_ids: list[int] = field(default_factory=list)
    logprob: float = 0.0  # of this step given its prefix
    prior: float = 1.0  # exp(logprob) normalised among siblings
    parent: Node | None = field(default=None, repr=False)
    children: list[Node] = field(default_factory=list, repr=False)
    visits: int = 0
    value_sum: float = 0.0
    score: float | None = None  # this node's own evaluation, computed once
    terminal: bool = False
    saturated: bool = False  # sampling more next steps here brought none that was not a child already
    pruned: bool = False  # valued at or below path expansion's prune_at, so its path ended here: nothing below
    exhausted: bool = False  # terminal, pruned, or saturated with every child exhausted: nothing left below
    stop_reason: str = "step"
    policy_step: str | None = None  # `step` less a tool's output in it (search/tools.py); None: all the policy's
    tool_calls: int = 0  # the tool calls whose outputs are in `step`
    answer: str | None = None  # the task's answer of a terminal node's solution (math: its last \boxed{}), read
    #                            from the policy's own text
    correct: bool | None = None  # the verifier's verdict, where it was asked

    @property
    def value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    @property
    def depth(self) -> int:
        return len(self.path())

    def path(self) -> list[Node]:
        """The steps from the first to this one (the root left out)."""
        nodes, node = [], self
        while node.parent is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def text(self) -> str:
        return "".join(n.step for n in self.path())

    def policy_text(self) -> str:
        """The solution so far as the policy wrote it, tools' outputs left out (answers and verdicts read this)."""
        return "".join(n.step if n.policy_step is None else n.policy_step for n in self.path())

    def ids(self) -> list[int]:
        return [t for n in self.path() for t in n.token_ids]

    def nodes(self) -> Iterator[Node]:
        """This node and all below it, depth first."""
        yield self
        for child in self.children:
            yield from child.nodes()


class Outcome(NamedTuple):
    """What a search method returns."""

    root: Node  # the tree it grew
    chosen: Node | None  # the solution it answers with (None: it finished none with an answer)
    value: float | None  # the chosen solution's value, or its vote share for self-consistency


def step_priors(logprobs: list[float]) -> list[float]:
    """Softmax of the steps' logprobs: each step's probability normalised among its siblings."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    return [w / sum(weights) for w in weights]


def backup(node: Node, value: float) -> None:
    """Add one visit of `value` to the node and every ancestor, and mark subtrees with nothing left to search."""
    while node is not None:
        node.visits += 1
        node.value_sum += value
        node.exhausted = (node.terminal or node.pruned
                          or (node.saturated and all(c.exhausted for c in node.children)))
        node = node.parent


VoteKey = Callable[[str], str]


def path_logprob(node: Node) -> float:
    """The policy's logprob of the node's whole solution: the sum of its steps'."""
    return sum(n.logprob for n in node.path())


# Ties (values that do not discriminate, such as a checker that scores every candidate 0) fall to the next key: the
# visits, then the probability of the whole solution, never to whichever candidate came first.
def _by_value(finals: list[Node], vote_key: VoteKey) -> Node:
    return max(finals, key=lambda n: (n.value, n.visits, path_logprob(n)))


def _by_visits(finals: list[Node], vote_key: VoteKey) -> Node:
    return max(finals, key=lambda n: (n.visits, n.value, path_logprob(n)))


def _by_vote(finals: list[Node], vote_key: VoteKey) -> Node:
    voters: dict[str, list[Node]] = defaultdict(list)
    for n in finals:
        voters[vote_key(n.answer)].append(n)
    best = {answer: max(nodes, key=lambda n: (n.value, n.visits, path_logprob(n))) for answer, nodes in voters.items()}
    # the highest sum of values, then the most solutions, then the best solution's visits and probability
    winner = max(voters, key=lambda answer: (sum(n.value for n in voters[answer]), len(voters[answer]),
                                             best[answer].visits, path_logprob(best[answer])))
    return best[winner]


# "value": the highest value; "visits": the most visited (ties by value); "vote": the answer whose solutions' values
# sum highest (answers compared by the task's vote key; ties by how many solutions give it), then its best solution.
# Equal keys fall to the visits and the solution's probability.
ANSWER_RULES: dict[str, Callable[[list[Node], VoteKey], Node]] = {
    "value": _by_value, "visits": _by_visits, "vote": _by_vote}


def check_answer_by(how: str) -> None:
    """Raise ValueError unless `how` names an answer rule (a key of ANSWER_RULES)."""
    if how not in ANSWER_RULES:
        raise ValueError(f"unknown answer selection {how!r}: use 'value', 'visits' or 'vote'")


def choose_answer(nodes: Iterable[Node], how: str, vote_key: VoteKey) -> Node | None:
    """The solution to answer with, by the rule `how` (ANSWER_RULES), among the evaluated terminal nodes that have an
    answer; None when there is none.

    Args:
        nodes: the candidates, e.g. `root.nodes()`.
        how: "value", "visits" or "vote".
        vote_key: what votes compare (the task's `vote_key`).
    """
    check_answer_by(how)
    finals = answer_candidates(nodes)
    return ANSWER_RULES[how](finals, vote_key) if finals else None


def answer_candidates(nodes: Iterable[Node]) -> list[Node]:
    """The evaluated terminal nodes that have an answer: what an answer rule chooses among."""
    return [n for n in nodes if n.terminal and n.answer is not None and n.visits > 0]


def values_tied(nodes: Iterable[Node]) -> bool:
    """Whether two or more candidate solutions were evaluated and every one has the same value: the value function
    did not tell them apart, so the answer came from the tie-breaks (visits, the solution's probability)."""
    candidates = answer_candidates(nodes)
    return len(candidates) > 1 and len({n.value for n in candidates}) == 1


_NODE_FIELDS = ("step", "token_ids", "logprob", "prior", "visits", "value_sum", "score", "terminal", "pruned",
                "stop_reason", "answer", "correct")


def tree_to_dict(node: Node, chosen: Node | None = None) -> dict[str, Any]:
    """The tree as plain data: each node's fields, its mean `value`, and `chosen` on the chosen path (root too)."""
    on_path = {id(n) for n in ([node, *chosen.path()] if chosen else [])}

    def export(n: Node) -> dict[str, Any]:
        return {**{name: getattr(n, name) for name in _NODE_FIELDS}, "value": n.value, "chosen": id(n) in on_path,
                "children": [export(c) for c in n.children]}

    return export(node)
