"""How a tree search values the node it reached: by the task's value function, by rollouts to the end checked by its
verifier (or a weighted mix of both), or by the value function's score of one sampled finish.

Each evaluation is called as `evaluation(ctx, node)`, computes a node's score once (kept in `node.score`) and says
in `requires` what it needs from the task; it keeps no state of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from search.context import SearchContext
from search.tree import Node

__all__ = ["Evaluation", "StateValue", "VerifiedRollout", "ScoredRollout"]


class Evaluation(Protocol):
    requires: tuple[str, ...]  # what it needs from the task: "value_fn", "verifier"

    def __call__(self, ctx: SearchContext, node: Node) -> float:
        """The node's value in [0, 1], computed once."""
        ...


@dataclass(frozen=True)
class StateValue:
    """The task's value function on the node's steps: a PRM on a partial solution, an ORM on a finished one."""

    requires: ClassVar[tuple[str, ...]] = ("value_fn",)

    def __call__(self, ctx: SearchContext, node: Node) -> float:
        if node.score is None:
            node.score = ctx.reward(node)
        return node.score


@dataclass(frozen=True)
class VerifiedRollout:
    """`(1 - weight) * value_fn + weight * verified`, where `verified` says whether a sampled finish of the node's
    solution is correct (a terminal node is its own finish, and keeps the verdict in `node.correct`).

    Attributes:
        weight: in [0, 1]; at 1 the value function is not asked, at 0 no rollout is sampled.
    """

    weight: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"rollout_weight must be in [0, 1], got {self.weight}")

    @property
    def requires(self) -> tuple[str, ...]:
        return ("value_fn", "verifier") if self.weight < 1.0 else ("verifier",)

    def __call__(self, ctx: SearchContext, node: Node) -> float:
        if node.score is None:
            w = self.weight
            learned = ctx.reward(node) if w < 1.0 else 0.0
            checked = float(self.verified(ctx, node)) if w > 0.0 else 0.0
            node.score = (1.0 - w) * learned + w * checked
        return node.score

    @staticmethod
    def verified(ctx: SearchContext, node: Node) -> bool:
        """Whether a sampled finish of the node's solution is correct (a terminal node is its own finish)."""
        if node.terminal:
            node.correct = ctx.verify(node.policy_text())
            return node.correct
        finish = ctx.sample(node, 1, whole=True)[0]
        return ctx.verify(node.policy_text() + finish.own_text())


@dataclass(frozen=True)
class ScoredRollout:
    """The value function's score of one sampled finish of the node's solution (an outcome score that needs no
    gold); a finished node is scored itself. The finish stays in the tree as a terminal child holding that score as
    its one visit, so that every simulation also adds a candidate answer (the simulation backs the score up from
    the node)."""

    requires: ClassVar[tuple[str, ...]] = ("value_fn",)

    def __call__(self, ctx: SearchContext, node: Node) -> float:
        if node.score is None:
            node.score = ctx.reward(node) if node.terminal else self.finish(ctx, node)
        return node.score

    @staticmethod
    def finish(ctx: SearchContext, node: Node) -> float:
        (finish,) = ctx.complete(node, 1)
        finish.score = ctx.reward(finish)
        finish.visits, finish.value_sum, finish.exhausted = 1, finish.score, True
        return finish.score
