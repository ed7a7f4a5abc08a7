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

# config name -> attribute of the rewards package
REWARD_FUNCTIONS = {
    "math_accuracy": "math_accuracy",
    "format": "format_reward",
    "math_steps": "math_steps",
    "code_execution": "code_execution",
    "length_penalty": "length_penalty",
}


def resolve_reward(name: str) -> Callable[..., list[float | None]]:
    """The reward function registered under name (or 'module:function' for a user's own)."""
    import importlib

    if ":" in name:
        module, _, attribute = name.partition(":")
        return getattr(importlib.import_module(module), attribute)
    if name not in REWARD_FUNCTIONS:
        raise ValueError(f"unknown reward function {name!r}; choose from {sorted(REWARD_FUNCTIONS)} "
                         "or give 'module:function'")
    import rewards

    function = getattr(rewards, REWARD_FUNCTIONS[name], None)
    if function is None:
        raise ValueError(f"reward function {name!r} is not available in this version of the rewards package")
    return function


class RewardWorker:
    """Scores completions with a weighted sum of reward functions."""

    def __init__(self, functions: list[str], weights: list[float] | None = None):
        if weights and len(weights) != len(functions):
            raise ValueError(f"{len(weights)} reward weights for {len(functions)} reward functions")
        self.names = list(functions)
        self.functions = [resolve_reward(name) for name in functions]
        self.weights = list(weights) if weights else [1.0] * len(functions)

    def ready(self) -> bool:
        return True

    def score(self, completions: list[str], columns: dict[str, list[Any]]) -> dict[str, Any]:
        """Returns {"total": [N floats], "components": {name: [N floats or None]}, "errors": {name: reason},
        "seconds": float}. None (not applicable) counts as 0 in the total."""
        started = time.perf_counter()
        components, errors = {}, {}
        for name, function in zip(self.names, self.functions):
            try:
                scores = list(function(completions, **columns))
                if len(scores) != len(completions):
                    raise ValueError(f"returned {len(scores)} scores for {len(completions)} completions")
            except Exception as error:  # a user's reward function may fail: score 0, keep training
                logger.warning("reward %s failed: %r", name, error)
                errors[name] = f"{type(error).__name__}: {error}"
                scores = [0.0] * len(completions)
            components[name] = [None if s is None or (isinstance(s, float) and math.isnan(s)) else float(s)
                                for s in scores]
        total = [sum(w * (components[n][i] or 0.0) for n, w in zip(self.names, self.weights))
                 for i in range(len(completions))]
        return {"total": total, "components": components, "errors": errors,
                "seconds": time.perf_counter() - started}


def reward_worker_actor(num_cpus: float = 0) -> Any:
    import ray

    return ray.remote(num_cpus=num_cpus)(RewardWorker)
