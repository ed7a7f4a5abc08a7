"""GRPO training on Ray with vLLM rollout workers; the `reasonrl` command line lives here.

    from rl import train
    summary = train("experiments/tiny_arith.yaml", ["trainer.steps=20"])
"""

from rl.cli import evaluate_checkpoint, grade_predictions, model_init, sft, train

__all__ = ["evaluate_checkpoint", "grade_predictions", "model_init", "sft", "train"]
