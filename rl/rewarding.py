"""The reward stage: named reward functions with TRL's signature, weighted and logged per component.

RewardWorker runs them (inside a Ray actor in the pipeline); the rewards package does the risky work in
its own process pool under hard limits. A function that raises anyway, or returns the wrong number of
scores, scores 0 for the batch with the reason logged: a reward never stops a training run.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

logger = logging.getLogger(__name__)

def _registry(timeout_s: float) -> dict[str, Callable[[], Callable[..., list[float | None]]]]:
    """config name -> a factory of the reward function, with the configured per-sample time limit."""
    import rewards

    return {
        "math_accuracy": lambda: rewards.MathAccuracy(timeout=timeout_s),
        "format": lambda: rewards.format_reward,
        "math_steps": lambda: rewards.MathSteps(timeout=timeout_s),
        "code_execution": lambda: rewards.CodeExecution(sample_timeout=max(timeout_s, 10.0)),
        "length_penalty": lambda: rewards.length_penalty,
    }


def resolve_reward(name: str, timeout_s: float = 5.0) -> Callable[..., list[float | None]]:
    """The reward function registered under name (or 'module:function' for a user's own)."""
    import importlib

    if ":" in name:
        module, _, attribute = name.partition(":")
        return getattr(importlib.import_module(module), attribute)
    registry = _registry(timeout_s)
    if name not in registry:
        raise ValueError(f"unknown reward function {name!r}; choose from {sorted(registry)} "
                         "or give 'module:function'")
    return registry[name]()


class RewardWorker:
    """Scores completions with a weighted sum of reward functions."""

    def __init__(self, functions: list[str], weights: list[float] | None = None, num_workers: int | None = None,
                 timeout_s: float = 5.0):
        if weights and len(weights) != len(functions):
            raise ValueError(f"{len(weights)} reward weights for {len(functions)} reward functions")
        if num_workers:
            import rewards

            rewards.configure_default_pool(num_workers, timeout=timeout_s)
        self.names = list(functions)
        self.functions = [resolve_reward(name, timeout_s) for name in functions]
        self.weights = list(weights) if weights else [1.0] * len(functions)

    def ready(self) -> bool:
        return True

    def score(self, completions: list[str], columns: dict[str, list[Any]]) -> dict[str, Any]:
        """Returns {"total": [N floats], "components": {name: [N floats or None]}, "errors": {name: reason},
        "reasons": {name: [N str or None]}, "seconds": float}. None (not applicable) counts as 0 in the total.

        "reasons" says per sample why each function scored it so, for functions with an `explain` method (see
        `scores_and_reasons`); the others give None per sample, and a function that failed gives its error.
        """
        started = time.perf_counter()
        components, errors, reasons = {}, {}, {}
        for name, function in zip(self.names, self.functions):
            try:
                scores, reasons[name] = scores_and_reasons(function, completions, columns)
            except Exception as error:  # a user's reward function may fail: score 0, keep training
                logger.warning("reward %s failed: %r", name, error)
                errors[name] = f"{type(error).__name__}: {error}"
                scores, reasons[name] = [0.0] * len(completions), [f"failed: {errors[name]}"] * len(completions)
            components[name] = [None if s is None or (isinstance(s, float) and math.isnan(s)) else float(s)
                                for s in scores]
        total = [sum(w * (components[n][i] or 0.0) for n, w in zip(self.names, self.weights))
                 for i in range(len(completions))]
        return {"total": total, "components": components, "errors": errors, "reasons": reasons,
                "seconds": time.perf_counter() - started}


def scores_and_reasons(function: Callable[..., Any], completions: list[str], columns: dict[str, list[Any]],
                       ) -> tuple[list[Any], list[str | None]]:
    """One call of a reward function: its scores and, when it has `explain(completions, **columns) ->
    (scores, reasons)`, its reason per sample (None per sample when it has not).

    Raises:
        ValueError: when the function returns a number of scores or reasons other than one per completion.
    """
    explain = getattr(function, "explain", None)
    if callable(explain):
        scores, reasons = explain(completions, **columns)
        reasons = [None if reason is None else str(reason) for reason in reasons]
    else:
        scores, reasons = function(completions, **columns), [None] * len(completions)
    scores = list(scores)
    if len(scores) != len(completions) or len(reasons) != len(completions):
        raise ValueError(f"returned {len(scores)} scores and {len(reasons)} reasons for {len(completions)} "
                         "completions")
    return scores, reasons


def reward_worker_actor(num_cpus: float = 0) -> Any:
    import ray

    return ray.remote(num_cpus=num_cpus)(RewardWorker)
