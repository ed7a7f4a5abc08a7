"""The learner's optimizer: AdamW with the RMSNorm gains in a group of their own, and its learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from rl.learner_settings import LearnerSettings


def lr_lambda(schedule: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimizer step s: linear warm-up, then constant/linear/cosine."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        if schedule == "linear":
            return 1.0 - progress
        if schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0
    return factor


def parameter_groups(policy: torch.nn.Module, lr: float, norm_lr_scale: float = 1.0) -> list[dict]:
    """AdamW's parameter groups: the RMSNorm gains (names ending in "norm.weight") at lr * norm_lr_scale, the rest
    at lr; one group when the scale is 1 (and when the policy has no such gains), so an optimizer state saved
    before this setting existed still loads."""
    named = list(policy.named_parameters())
    gains = [p for name, p in named if name.endswith("norm.weight")]
    rest = [p for name, p in named if not name.endswith("norm.weight")]
    if norm_lr_scale == 1.0 or not gains:
        return [{"params": [p for _, p in named], "lr": lr}]
    return [{"params": rest, "lr": lr}, {"params": gains, "lr": lr * norm_lr_scale}]


def make_optimizer(policy: torch.nn.Module, settings: LearnerSettings, total_steps: int
                   ) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the policy and its schedule, which spans the run's optimizer steps.

    Args:
        policy: the model being trained (sharded or not).
        settings: its lr, norm_lr_scale, weight_decay, lr_schedule and warmup_steps, and num_iterations and
            mini_batches (the optimizer steps a GRPO step takes).
        total_steps: GRPO steps of the run.
    """
    optimizer = torch.optim.AdamW(parameter_groups(policy, settings.lr, settings.norm_lr_scale),
                                  lr=settings.lr, weight_decay=settings.weight_decay)
    updates = total_steps * settings.num_iterations * settings.mini_batches
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(settings.lr_schedule, settings.warmup_steps,
                                                                       updates))
    return optimizer, scheduler
