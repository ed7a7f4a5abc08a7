"""A weighted combination of reward functions that keeps each component for logging."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

__all__ = ["WeightedReward"]

RewardFn = Callable[..., list]


class WeightedReward:
    """``sum_i w_i * r_i`` over reward functions, each reported separately.

    A component that returns None for a sample ("not applicable") is left out of that
    sample's sum (its weight is not renormalised); a component that raises (a third-party
    reward) scores 0.0 for the batch and the error is kept in ``last_errors``.

    Args:
        rewards: ``{name: (fn, weight)}``; ``fn`` has TRL's signature.

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

    def components(self, completions: Sequence[Any], **kwargs: Any) -> dict[str, list[float | None]]:
        """Each component's scores, by name."""
        out: dict[str, list[float | None]] = {}
        self.last_errors = {}
        for name, (fn, _) in self.rewards.items():
            try:
                scores = list(fn(completions, **kwargs))
                if len(scores) != len(completions):
                    raise ValueError(f"returned {len(scores)} scores for {len(completions)} completions")
            except Exception as exc:  # noqa: BLE001 - one broken component must not take the batch down
                self.last_errors[name] = f"{type(exc).__name__}: {exc}"
                scores = [0.0] * len(completions)
            out[name] = [None if s is None or (isinstance(s, float) and math.isnan(s)) else float(s) for s in scores]
        return out

    def __call__(self, completions: Sequence[Any], log_extra: Callable[[str, list], None] | None = None,
                 **kwargs: Any) -> list[float]:
        """Weighted sum per sample; components go to ``log_extra`` and ``last_components``."""
        comps = self.components(completions, **kwargs)
        self.last_components = comps
        if log_extra is not None:
            for name, scores in comps.items():
                log_extra(f"reward/{name}", scores)
        totals = []
        for i in range(len(completions)):
            parts = [w * comps[name][i] for name, (_, w) in self.rewards.items() if comps[name][i] is not None]
            totals.append(round(sum(parts), 10))
        return totals
