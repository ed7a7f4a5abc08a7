"""Rule-based rewards for RL on reasoning: math answers, sympy step checks, sandboxed code.

Every reward has TRL's signature `fn(completions, **columns) -> list[float | None]`
(completions as strings or chat message lists; dataset columns such as `answer` or
`tests` as keyword arguments) and runs its risky work in
`rewards.pool.GradingPool` worker processes under hard time and memory limits.
A problem with one sample (a None completion, an unparseable answer, malformed tests)
never raises: that sample scores 0.0 (or None, "not applicable") with a reason. A
malformed call (`completions` not a list or tuple, e.g. a bare string; a column whose
length is not the number of completions) raises `RewardCallError` naming the problem.

A reward that can say why a sample scored what it did also has
`explain(completions, **columns) -> (scores, reasons)`: the scores `__call__` returns
and one human-readable reason per sample, from the same single pass (`math_accuracy`,
`format_reward`); the trainer logs these reasons beside sampled completions.
"""

from rewards.calls import RewardCallError
from rewards.code import CodeExecution, code_execution, extract_program, run_tests
from rewards.combine import WeightedReward
from rewards.format import (CodeFormatReward, FormatReward, LengthPenalty, code_format_reward, format_reward,
                            length_penalty)
from rewards.math_answer import Verdict, grade_answer
from rewards.math_reward import MathAccuracy, grade_batch, math_accuracy
from rewards.sandbox import RunResult, SandboxLimits, isolation, run_sandboxed
from rewards.steps import Claim, MathSteps, check_steps, math_steps, step_summary
from rewards.pool import GradingPool, TaskResult, configure_default_pool, get_default_pool, shutdown_default_pool

__all__ = [
    "RewardCallError",
    "FormatReward",
    "LengthPenalty",
    "WeightedReward",
    "format_reward",
    "CodeFormatReward",
    "code_format_reward",
    "length_penalty",
    "CodeExecution",
    "code_execution",
    "extract_program",
    "run_tests",
    "RunResult",
    "SandboxLimits",
    "isolation",
    "run_sandboxed",
    "Claim",
    "MathSteps",
    "check_steps",
    "math_steps",
    "step_summary",
    "GradingPool",
    "configure_default_pool",
    "MathAccuracy",
    "TaskResult",
    "Verdict",
    "get_default_pool",
    "grade_answer",
    "grade_batch",
    "math_accuracy",
    "shutdown_default_pool",
]
