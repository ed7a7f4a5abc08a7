"""Metrics of a run: JSON lines, TensorBoard, Weights & Biases when configured, and the final plot."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Writes one record per step to metrics.jsonl and TensorBoard (and wandb if a project is set)."""

    def __init__(self, folder: Path, jsonl: bool = True, tensorboard: bool = True, wandb_project: str | None = None,
                 config: dict | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.jsonl = (self.folder / "metrics.jsonl").open("a") if jsonl else None
        self.tensorboard = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(self.folder / "tensorboard"))
        self.wandb = None
        if wandb_project:
            import wandb  # optional dependency: pip install wandb

            self.wandb = wandb.init(project=wandb_project, config=config, dir=str(self.folder))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if self.jsonl:
            self.jsonl.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")
            self.jsonl.flush()
        if self.tensorboard:
            for key, value in numbers.items():
                self.tensorboard.add_scalar(key, value, step)
            self.tensorboard.flush()
        if self.wandb:
            self.wandb.log(numbers, step=step)

    def close(self) -> None:
        if self.jsonl:
            self.jsonl.close()
        if self.tensorboard:
            self.tensorboard.close()
        if self.wandb:
            self.wandb.finish()


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl (the last record wins for a step logged twice, e.g. after a resume)."""
    by_step: dict[tuple[int, bool], dict] = {}
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        by_step[(record["step"], "eval/pass@1" in record)] = record
    return [by_step[key] for key in sorted(by_step)]


def plot_run(metrics_path: Path, out: Path) -> Path:
    """PNG of training reward and held-out accuracy over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if "reward/mean" in r]
    evals = [r for r in records if "eval/pass@1" in r]
    figure, axis = plt.subplots(figsize=(7, 4))
    if train:
        axis.plot([r["step"] for r in train], [r["reward/mean"] for r in train], label="training reward (mean)")
    if evals:
        axis.plot([r["step"] for r in evals], [r["eval/pass@1"] for r in evals], "o-", label="held-out pass@1")
    axis.set_xlabel("GRPO step")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
