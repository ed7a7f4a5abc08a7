"""GRPO training on Ray with vLLM rollout workers; the Python API (rl/api.py) and the `reasonrl` command line (rl/cli.py).

    from rl import train
    summary = train("experiments/tiny_arith.yaml", ["trainer.steps=20"])
"""

from rl.api import evaluate_checkpoint, grade_predictions, model_init, sft, solve, train

__all__ = ["evaluate_checkpoint", "grade_predictions", "model_init", "sft", "solve", "train"]
