"""The one table of search methods: each name, the options it takes and the values and combinations it refuses.

`METHODS` maps a method's name to what builds it from its options: an algorithm class (its fields are its options,
checked in `__post_init__`) or, for "mcts", `build_mcts`, which picks the MCTS variant its options describe. Every
option is checked in one place, when the method is built; `solve`, `check_options` and the command line
(`reasonrl solve --option`, `reasonrl eval --search`) all build through `build_algorithm`, so each refuses the same
options with the same message, before any engine starts. The options every method shares are the SearchContext's
(`CONTEXT_OPTIONS`).
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from typing import Any, Callable, Protocol

from search.baselines import DVTS, BeamSearch, BestOfN, Greedy, SelfConsistency, WeightedBestOfN
from search.context import SearchContext
from search.evaluation import ScoredRollout, StateValue, VerifiedRollout
from search.gumbel import GumbelMCTS
from search.mcts import MCTS
from search.path_expansion import PathMCTS
from search.tree import Outcome

__all__ = ["Algorithm", "build_mcts", "METHODS", "CONTEXT_OPTIONS", "method_options", "build_algorithm",
           "check_options"]


class Algorithm(Protocol):
    """A search method built from its options."""

    requires: tuple[str, ...]  # what it needs from the task besides its rules: "value_fn", "verifier"

    def __call__(self, ctx: SearchContext) -> Outcome:
        """Search, spending `ctx`'s budget; the tree, the chosen solution and its value."""
        ...


def build_mcts(*, num_children: int = 4, selection: str = "puct", answer_by: str = "value",
               rollout_weight: float = 0.0, scored_rollouts: bool = False, c_init: float = 1.25,
               c_base: float = 19652, max_simulations: int = 1000, simulations_per_step: int = 16, top_k: int = 4,
               expansion: str = "children", prune_at: float | None = None) -> Algorithm:
    """The MCTS variant the options describe.

    Args:
        num_children: next steps sampled to expand a leaf.
        selection: "puct" (search/mcts.py) or "gumbel" (sequential halving a step at a time, search/gumbel.py).
        answer_by: "value", "visits" or "vote" (search.tree.ANSWER_RULES).
        rollout_weight: in [0, 1]: a leaf's value is `(1 - w) * value_fn + w * verified rollout`.
        scored_rollouts: value a leaf by the value_fn's score of one sampled finish, kept as a candidate.
        c_init, c_base: PUCT's exploration weight.
        max_simulations: a cap on simulations besides the budget (PUCT).
        simulations_per_step, top_k: Gumbel's simulations per decided step and its candidate steps.
        expansion: "children" (k sampled next steps per simulation) or "path" (a whole path sampled step by step,
            every step valued by the value_fn; search/path_expansion.py).
        prune_at: with path expansion, a step valued at or below it ends its path.

    Raises:
        ValueError: an unknown selection, expansion or answer rule, a rollout weight outside [0, 1], or options
            that do not combine.
    """
    if selection not in ("puct", "gumbel"):
        raise ValueError(f"unknown selection {selection!r}: use 'puct' or 'gumbel'")
    if expansion not in ("children", "path"):
        raise ValueError(f"unknown expansion {expansion!r}: use 'children' or 'path'")
    verified = VerifiedRollout(rollout_weight) if rollout_weight != 0.0 else None  # checks the weight's range
    if scored_rollouts and verified:
        raise ValueError("scored_rollouts replaces rollout_weight: give one of them")
    if expansion == "path":
        if scored_rollouts or verified:
            raise ValueError("expansion='path' values each step of its path with the value_fn: it takes neither "
                             "scored_rollouts nor rollout_weight")
        if selection != "puct":
            raise ValueError("expansion='path' runs with selection='puct'")
        return PathMCTS(answer_by=answer_by, prune_at=prune_at, c_init=c_init, c_base=c_base,
                        max_simulations=max_simulations)
    evaluation = ScoredRollout() if scored_rollouts else verified or StateValue()
    puct = MCTS(num_children=num_children, evaluation=evaluation, answer_by=answer_by, c_init=c_init, c_base=c_base,
                max_simulations=max_simulations)
    if selection == "gumbel":
        return GumbelMCTS(puct, simulations_per_step=simulations_per_step, top_k=top_k)
    return puct


METHODS: dict[str, Callable[..., Algorithm]] = {
    "mcts": build_mcts, "greedy": Greedy, "self_consistency": SelfConsistency, "best_of_n": BestOfN,
    "weighted_best_of_n": WeightedBestOfN, "beam": BeamSearch, "dvts": DVTS,
}

# The options every method takes: the SearchContext's sampling settings.
CONTEXT_OPTIONS = ("temperature", "step_temperature", "max_step_tokens", "max_tokens", "max_depth", "seed")


def method_options(method: str) -> list[str]:
    """The options `solve` takes for a method: the shared SearchContext ones and the method's own."""
    return sorted({*CONTEXT_OPTIONS, *inspect.signature(METHODS[method]).parameters})


def build_algorithm(method: str, options: dict[str, Any]) -> Algorithm:
    """The method built from its options (the SearchContext's among them are left for the context).

    Raises:
        ValueError: naming an unknown method, the options the method lacks (and listing those it has), or a value
            or combination of values it refuses.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: one of {sorted(METHODS)}")
    unknown = sorted(set(options) - set(method_options(method)))
    if unknown:
        raise ValueError(f"{method} has no option {', '.join(unknown)}: its options are "
                         f"{', '.join(method_options(method))}")
    check_option_values(method, options)
    return METHODS[method](**{name: value for name, value in options.items() if name not in CONTEXT_OPTIONS})


def check_option_values(method: str, options: dict[str, Any]) -> None:
    """Raise ValueError naming an option whose value is not of its annotated type (an int, a finite number, a bool,
    a string, or None where None is allowed), a count below 1 or a negative temperature: what the engine would
    otherwise refuse in a traceback after it started."""
    builder = METHODS[method]
    hints = {**typing.get_type_hints(SearchContext), **typing.get_type_hints(builder)}
    for name, value in options.items():
        hint = hints.get(name)
        if hint is None:
            continue
        allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        if not any(_is_a(value, kind) for kind in allowed):
            kinds = " or ".join(KIND_NAMES.get(kind, getattr(kind, "__name__", str(kind))) for kind in allowed)
            raise ValueError(f"{method} option {name} must be {kinds}, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and name != "seed" and value < 1:
            raise ValueError(f"{method} option {name} must be >= 1, got {value}")
        if "temperature" in name and value is not None and value < 0:
            raise ValueError(f"{method} option {name} must be >= 0, got {value}")


KIND_NAMES = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string", type(None): "null"}


def _is_a(value: Any, kind: Any) -> bool:
    """Whether an option's value is of an annotated kind: bools are not numbers, ints are floats, floats finite."""
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind) if isinstance(kind, type) else True


def check_options(method: str, options: dict[str, Any]) -> None:
    """Raise ValueError on what `build_algorithm` refuses, before any engine starts (the command line's check)."""
    build_algorithm(method, options)
