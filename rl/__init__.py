"""GRPO training on Ray with vLLM rollout workers; the Python API (rl/api.py) and the `reasonrl` command line (rl/cli.py).

    from rl import train
    summary = train("experiments/tiny_arith.yaml", ["trainer.steps=20"])
"""

__all__ = ["distill", "evaluate_checkpoint", "grade_predictions", "model_init", "sft", "solve", "train"]


def __getattr__(name: str):
    """`rl.train` and the rest of the API, imported on first use: a process that imports one rl module (a Ray
    actor's rl.learner, say) should not import the whole API with search and the engine set-up."""
    if name in __all__:
        from rl import api  # lazy, see the docstring

        return getattr(api, name)
    raise AttributeError(f"module 'rl' has no attribute {name!r}")
