"""A weighted combination of reward functions that keeps each component for logging."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from rewards.calls import RewardCallError, check_call

__all__ = ["WeightedReward"]

RewardFn = Callable[..., list]


class WeightedReward:
    """`sum_i w_i * r_i` over reward functions, each reported separately.

    A component that returns None for a sample ("not applicable") is left out of that
    sample's sum (its weight is not renormalised); a component that raises (a third-party
    reward) scores 0.0 for the batch and the error is kept in `last_errors`. A malformed
    call (see `rewards.calls.check_call`) raises `rewards.RewardCallError`, and
    so does a component's own `RewardCallError`: the call, not the component, is wrong.

    Args:
        rewards: `{name: (fn, weight)}`; `fn` has TRL's signature.

    Example:
        >>> from rewards import format_reward, math_accuracy
        >>> combo = WeightedReward({"acc": (math_accuracy, 1.0), "fmt": (format_reward, 0.2)})
        >>> combo(["<think>ok</think> \\\\boxed{4}"], answer=["4"])
        [1.2]
    """

    __name__ = "weighted_reward"

    def __init__(self, rewards: dict[str, tuple[RewardFn, float]]):
        if not rewards:
            raise ValueError("WeightedReward needs at least one reward function")
        self.rewards = dict(rewards)
        self.last_components: dict[str, list[float | None]] = {}
        self.last_errors: dict[str, str] = {}

    def score(self, completions: Sequence[Any], **kwargs: Any) -> dict[str, Any]:
        """Score completions with every component in one pass.

        A sample's total is the weighted sum of the components that apply to it, None when none does ("not
        applicable" stays distinct from 0). Reasons come from a component's `explain(completions, **columns)`
        when it has one (None per sample otherwise); a component that raised gives its error as every reason.

        Args:
            completions: Strings or chat message lists.
            **kwargs: Dataset columns, one value per completion.

        Returns:
            `{"total": [float | None], "components": {name: [float | None]}, "reasons": {name: [str | None]},
            "errors": {name: str}}`.
        """
        completions = check_call(self.__name__, completions, kwargs)
        components: dict[str, list[float | None]] = {}
        reasons: dict[str, list[str | None]] = {}
        errors: dict[str, str] = {}
        for name, (fn, _) in self.rewards.items():
            try:
                scores, reasons[name] = _scores_and_reasons(fn, completions, kwargs)
            except RewardCallError:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken component must not take the batch down
                errors[name] = f"{type(exc).__name__}: {exc}"
                scores, reasons[name] = [0.0] * len(completions), [f"failed: {errors[name]}"] * len(completions)
            components[name] = [None if s is None or (isinstance(s, float) and math.isnan(s)) else float(s)
                                for s in scores]
        totals = []
        for i in range(len(completions)):
            parts = [w * components[name][i] for name, (_, w) in self.rewards.items()
                     if components[name][i] is not None]
            totals.append(round(sum(parts), 10) if parts else None)
        self.last_components, self.last_errors = components, errors
        return {"total": totals, "components": components, "reasons": reasons, "errors": errors}

    def components(self, completions: Sequence[Any], **kwargs: Any) -> dict[str, list[float | None]]:
        """Each component's scores, by name."""
        return self.score(completions, **kwargs)["components"]

    def __call__(self, completions: Sequence[Any], log_extra: Callable[[str, list], None] | None = None,
                 **kwargs: Any) -> list[float | None]:
        """Weighted sum per sample (None where no component applies; TRL reads it as NaN); components go to
        `log_extra` and `last_components`."""
        scored = self.score(completions, **kwargs)
        if log_extra is not None:
            for name, scores in scored["components"].items():
                log_extra(f"reward/{name}", scores)
        return scored["total"]


def _scores_and_reasons(fn: RewardFn, completions: list, columns: dict[str, Any]) -> tuple[list, list[str | None]]:
    """One call of a reward function: its scores and, when it has `explain`, its reason per sample.

    Raises:
        ValueError: when it returns a number of scores or reasons other than one per completion.
    """
    explain = getattr(fn, "explain", None)
    if callable(explain):
        scores, reasons = explain(completions, **columns)
        reasons = [None if reason is None else str(reason) for reason in reasons]
    else:
        scores, reasons = fn(completions, **columns), [None] * len(completions)
    scores = list(scores)
    if len(scores) != len(completions) or len(reasons) != len(completions):
        raise ValueError(f"returned {len(scores)} scores and {len(reasons)} reasons for {len(completions)} "
                         "completions")
    return scores, reasons
