"""The reward stage: reward functions named in the config, with TRL's signature, combined by
rewards.WeightedReward (each component's score and reason kept, None = not applicable) and timed.

RewardWorker runs them (inside a Ray actor in the pipeline); the rewards package does the risky work in
its own process pool under hard limits. A function that raises anyway, or returns the wrong number of
scores, scores 0 for the batch with the reason logged: a reward never stops a training run.
"""

from __future__ import annotations

import difflib
import importlib
import logging
import time
from typing import Any, Callable

import rewards
from rewards.calls import missing_columns

logger = logging.getLogger(__name__)


def _registry(timeout_s: float) -> dict[str, Callable[[], Callable[..., list[float | None]]]]:
    """config name -> a factory of the reward function, with the configured per-sample time limit."""
    return {
        "math_accuracy": lambda: rewards.MathAccuracy(timeout=timeout_s),
        "format": lambda: rewards.format_reward,
        "code_format": lambda: rewards.code_format_reward,
        "math_steps": lambda: rewards.MathSteps(timeout=timeout_s),
        "code_execution": lambda: rewards.CodeExecution(sample_timeout=max(timeout_s, 10.0)),
        "code_pass_all": lambda: rewards.CodeExecution(sample_timeout=max(timeout_s, 10.0), partial_credit=False),
        "length_penalty": lambda: rewards.length_penalty,
    }


REWARD_NAMES = tuple(_registry(timeout_s=0.0))  # the names the config accepts, in the registry's order


def reward_name_error(name: str) -> str | None:
    """Why `name` names no reward function (a registry name, or 'module:function' importable here), or None."""
    if ":" not in name:
        if name in REWARD_NAMES:
            return None
        close = difflib.get_close_matches(name, REWARD_NAMES, n=1)
        return (f"unknown reward function {name!r}{f' (did you mean {close[0]!r}?)' if close else ''}; choose from "
                f"{', '.join(REWARD_NAMES)} or give 'module:function'")
    module, _, attribute = name.partition(":")
    try:
        function = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        return f"cannot load reward function {name!r}: {type(error).__name__}: {error}"
    return None if callable(function) else f"{name!r} is not callable"


def resolve_reward(name: str, timeout_s: float = 5.0) -> Callable[..., list[float | None]]:
    """The reward function registered under name (or 'module:function' for a user's own)."""
    if ":" in name:
        module, _, attribute = name.partition(":")
        return getattr(importlib.import_module(module), attribute)
    error = reward_name_error(name)
    if error:
        raise ValueError(error)
    return _registry(timeout_s)[name]()


def column_errors(functions: list[str], columns: list[str], dataset: str) -> list[str]:
    """Why each reward function cannot run on a dataset with these columns (one message per missing column group),
    so a reward that would only ever see None (and score every sample 0 or "not applicable") stops the run at
    start-up instead of dropping every group, silently."""
    errors = []
    for i, name in enumerate(functions):
        for group in missing_columns(resolve_reward(name), columns):
            wanted = " or ".join(repr(c) for c in group)
            errors.append(f"reward.functions[{i}]: {name} needs the dataset column {wanted}, which {dataset} does "
                          f"not have (its columns: {', '.join(columns)})")
    return errors


class RewardWorker:
    """Scores completions with a weighted sum of reward functions (rewards.WeightedReward), timed."""

    def __init__(self, functions: list[str], weights: list[float] | None = None, num_workers: int | None = None,
                 timeout_s: float = 5.0):
        if weights and len(weights) != len(functions):
            raise ValueError(f"{len(weights)} reward weights for {len(functions)} reward functions")
        if num_workers:
            rewards.configure_default_pool(num_workers, timeout=timeout_s)
        weights = list(weights) if weights else [1.0] * len(functions)
        self.combined = rewards.WeightedReward({name: (resolve_reward(name, timeout_s), weight)
                                                for name, weight in zip(functions, weights)})

    def ready(self) -> bool:
        return True

    def score(self, completions: list[str], columns: dict[str, list[Any]]) -> dict[str, Any]:
        """rewards.WeightedReward.score's result ({"total", "components", "reasons", "errors"}: None = not
        applicable, kept apart from 0; a sample no function applies to has total None) and "seconds"."""
        started = time.perf_counter()
        scored = self.combined.score(completions, **columns)
        for name, error in scored["errors"].items():
            logger.warning("reward %s failed: %s", name, error)
        return scored | {"seconds": time.perf_counter() - started}


def reward_worker_actor(num_cpus: float = 0) -> Any:
    import ray  # lazy: rl.config imports this module for the reward names, and the learner's benchmark imports
    # rl.config on GPU machines that have no Ray

    return ray.remote(num_cpus=num_cpus)(RewardWorker)
