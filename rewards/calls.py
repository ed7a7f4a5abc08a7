"""Validation of a reward function's call, shared by every reward of the package.

A reward never raises for a bad *sample* (a None completion, a completion of the wrong type, a gold it cannot
parse: that sample scores 0.0, or None where it does not apply, with a reason). A malformed *call* is another
matter: a bare string as `completions` would be read as a list of characters, a column shorter than the
completions would leave samples without their data, and either would give scores that look real and are not.
So the call is checked first and `RewardCallError` names what is wrong. rl's RewardWorker catches any
exception of a reward function (that batch scores 0 and the reason is logged), so a run never stops on it; a
person calling the function by hand gets the error instead of a silent wrong score.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterable, Mapping

__all__ = ["RewardCallError", "check_call", "required_columns", "missing_columns"]

# Keyword arguments a caller passes that are not dataset columns (TRL's hooks and ours).
NOT_COLUMNS = {"completions", "log_extra", "trainer_state", "completion_ids", "prompts"}


class RewardCallError(ValueError):
    """A reward function was called with malformed arguments (not a per-sample problem)."""


def _kind(value: object) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


def check_call(name: str, completions: object, columns: Mapping[str, Any], read: Iterable[str] = ()) -> list:
    """Check a reward call.

    Args:
        name: The reward's name, for the message.
        completions: What the caller passed as completions: must be a list or tuple (of strings or chat
            message lists; a wrong element is a per-sample problem, not checked here).
        columns: The keyword arguments of the call. Every list or tuple among them is a dataset column and
            must have one value per completion; other values (`log_extra`, `trainer_state`) are left alone.
        read: Columns this reward reads: when present and not None they must be a list or tuple.

    Returns:
        The completions as a list.

    Raises:
        RewardCallError: naming the problem, e.g. `"math_accuracy: completions is a str, expected a list of
            completions (wrap a single completion in a list)"` or `"math_accuracy: 3 completions but 2
            values in column 'answer'"`.
    """
    if not isinstance(completions, (list, tuple)):
        hint = " (wrap a single completion in a list)" if isinstance(completions, (str, bytes, dict)) else ""
        raise RewardCallError(f"{name}: completions is {_kind(completions)}, expected a list of completions{hint}")
    n = len(completions)
    for column in read:
        values = columns.get(column)
        if values is not None and not isinstance(values, (list, tuple)):
            raise RewardCallError(f"{name}: column {column!r} is {_kind(values)}, expected a list with one value "
                                  f"per completion ({n})")
    for column, values in columns.items():
        if isinstance(values, (list, tuple)) and len(values) != n:
            count = f"{len(values)} value{'' if len(values) == 1 else 's'}"
            raise RewardCallError(f"{name}: {n} completions but {count} in column {column!r}")
    return list(completions)


def required_columns(reward: Callable[..., Any]) -> list[tuple[str, ...]]:
    """The dataset columns a reward function needs, as groups of alternatives (one column of each group must exist).

    A reward says so itself with a `required_columns` attribute (`MathAccuracy`: `[("answer", "solution")]`,
    `CodeExecution`: `[("tests",)]`); for any other callable, each keyword parameter without a default (besides
    `completions` and TRL's hooks) is a required column, as TRL passes every column by its name.

    Args:
        reward: A reward function or callable instance.

    Returns:
        Groups of column names; the call needs one column of each group.
    """
    declared = getattr(reward, "required_columns", None)
    if declared is not None:
        return [tuple(group) for group in declared]
    try:
        parameters = inspect.signature(reward).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: nothing to check
        return []
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [(p.name,) for p in parameters
            if p.kind in kinds and p.default is inspect.Parameter.empty and p.name not in NOT_COLUMNS]


def missing_columns(reward: Callable[..., Any], columns: Iterable[str]) -> list[tuple[str, ...]]:
    """The column groups a reward needs that a dataset lacks.

    Args:
        reward: A reward function or callable instance.
        columns: The dataset's column names.

    Returns:
        The groups of `required_columns(reward)` of which `columns` has none.
    """
    have = set(columns)
    return [group for group in required_columns(reward) if not have.intersection(group)]
