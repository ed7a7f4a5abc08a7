"""The loss and optimiser settings a Learner reads, as one frozen value.

The learner takes these instead of the run's whole configuration: it does not know rl/config.py, and a test or a
benchmark states exactly what it runs with. `LearnerSettings.from_config` is the one place an AlgorithmConfig
becomes them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotation only: the learner never imports the configuration
    from rl.config import AlgorithmConfig


@dataclass(frozen=True)
class LearnerSettings:
    """What the learner's loss, optimizer and update loop read.

    Each field is the AlgorithmConfig field of the same name (rl/config.py), whose help says what it means; the
    values are checked there, not again here.
    """

    # the policy loss (rl/algos.py: policy_loss)
    loss_type: str
    epsilon_low: float
    epsilon_high: float
    delta: float | None
    importance_sampling_level: str
    beta: float
    kl_bias_correction: bool
    rollout_correction_cap: float | None
    entropy_coeff: float
    # the update loop
    num_iterations: int
    mini_batches: int
    max_grad_norm: float
    balance_bias_speed: float
    # AdamW and its schedule (rl/optimizer.py)
    lr: float
    norm_lr_scale: float
    weight_decay: float
    lr_schedule: str
    warmup_steps: int
    # the auxiliary MTP loss on the completions (rl/algos.py: mtp_loss)
    mtp_weight: float = 0.0

    @classmethod
    def from_config(cls, algorithm: AlgorithmConfig) -> LearnerSettings:
        """The settings of a run's algorithm section (every field read by its own name)."""
        return cls(**{field.name: getattr(algorithm, field.name) for field in dataclasses.fields(cls)})
