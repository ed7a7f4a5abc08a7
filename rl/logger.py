"""Metrics of a run: JSON lines, TensorBoard, Weights & Biases when configured, and the final plot; and a few
sampled completions per step with their rewards and the reward functions' reasons (samples.jsonl), because a reward
hack shows in the text long before it shows in the numbers."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Sequence

SAMPLES_FILE = "samples.jsonl"


class MetricsLogger:
    """Writes one record per step to metrics.jsonl and TensorBoard (and wandb if a project is set), and sampled
    completions (`log_samples`) to samples.jsonl and TensorBoard's text tab."""

    def __init__(self, folder: Path, jsonl: bool = True, tensorboard: bool = True, wandb_project: str | None = None,
                 config: dict | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.jsonl = (self.folder / "metrics.jsonl").open("a") if jsonl else None
        self.samples = None  # samples.jsonl, opened by the first log_samples
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

    def log_samples(self, step: int, records: Sequence[dict[str, Any]]) -> None:
        """Append `records` (from `sample_records`) to samples.jsonl, one JSON object a line, and show them in
        TensorBoard's text tab under "samples". A step logged twice (after a resume) appears twice in the file."""
        if not records:
            return
        if self.samples is None:
            self.samples = (self.folder / SAMPLES_FILE).open("a")
        for record in records:
            self.samples.write(json.dumps(record) + "\n")
        self.samples.flush()
        if self.tensorboard:
            self.tensorboard.add_text("samples", "\n\n---\n\n".join(map(sample_markdown, records)), step)
            self.tensorboard.flush()
        if self.wandb:
            import wandb

            columns = ["problem_id", "answer", "reward", "completion"]
            rows = [[str(record.get(column, "")) for column in columns] for record in records]
            self.wandb.log({"samples": wandb.Table(columns=columns, data=rows)}, step=step)

    def close(self) -> None:
        if self.jsonl:
            self.jsonl.close()
        if self.samples:
            self.samples.close()
        if self.tensorboard:
            self.tensorboard.close()
        if self.wandb:
            self.wandb.finish()


def sample_records(step: int, problems: Sequence[Any], completions: Sequence[str], scored: dict[str, Any],
                   k: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """Up to `k` completions of one GRPO step, chosen to be read: the best and the worst of each of ceil(k / 2)
    groups drawn at random (seeded by `seed` and `step`, so a rerun picks the same ones), in batch order. Random
    groups, not the extreme ones: a hack that every sample of a group has found shows as well as a mixed group.

    Args:
        step: the step number the records are filed under.
        problems: the step's problems, one per group (rl.data.Problem: id, question, answer).
        completions: the decoded completions, `len(problems) * group_size` of them, group by group.
        scored: `RewardWorker.score`'s result for these completions: "total", "components" and (optional)
            "reasons", each with one value per completion.
        k: how many records to return (fewer when the batch has fewer than k / 2 groups); 0 = none.
        seed: the run's seed.

    Returns:
        JSON-serialisable dicts: step, problem_id, question, answer (gold), group and sample (indices in the batch),
        pick ("best" or "worst" of its group), completion, reward (the weighted total), group_rewards (the totals of
        its whole group), components ({function: score or None}) and reasons ({function: reason or None}).

    Raises:
        ValueError: when the completions do not split into one equal group per problem, or the scores do not match.
    """
    if not problems or len(completions) % len(problems):
        raise ValueError(f"{len(completions)} completions do not split into groups for {len(problems)} problems")
    if len(scored["total"]) != len(completions):
        raise ValueError(f"{len(scored['total'])} rewards for {len(completions)} completions")
    group_size = len(completions) // len(problems)
    per_group = ("best", "worst")[:group_size]  # a group of one has no separate worst
    rng = random.Random(seed * 1_000_003 + step)
    groups = sorted(rng.sample(range(len(problems)), min(-(-k // len(per_group)), len(problems))))
    picks = [(g, pick) for g in groups for pick in per_group][:k]
    return [_sample_record(step, problems[g], g, group_size, pick, completions, scored) for g, pick in picks]


def _sample_record(step: int, problem: Any, group: int, group_size: int, pick: str, completions: Sequence[str],
                   scored: dict[str, Any]) -> dict[str, Any]:
    """The record of the best or worst completion of `group`. Ties go by batch order (worst: the first of the
    lowest, best: the last of the highest), so a group of equal rewards still shows two different completions."""
    indices = range(group * group_size, (group + 1) * group_size)
    totals = scored["total"]
    by_reward = sorted(indices, key=lambda i: totals[i])  # stable
    sample = by_reward[-1] if pick == "best" else by_reward[0]
    reasons = scored.get("reasons", {})
    return {"step": step, "problem_id": problem.id, "question": problem.question, "answer": problem.answer,
            "group": group, "sample": sample, "pick": pick, "completion": completions[sample],
            "reward": totals[sample], "group_rewards": [totals[i] for i in indices],
            "components": {name: values[sample] for name, values in scored["components"].items()},
            "reasons": {name: reasons.get(name, [None] * len(totals))[sample] for name in scored["components"]}}


def sample_markdown(record: dict[str, Any]) -> str:
    """One sample record as Markdown (TensorBoard's text tab renders it)."""
    parts = [f"{name} = {score}" + (f" ({record['reasons'][name]})" if record["reasons"].get(name) else "")
             for name, score in record["components"].items()]
    return (f"**{record['pick']}** of group {record['group']} ({record['problem_id']}): reward {record['reward']:g}, "
            f"group {record['group_rewards']}  \n{'; '.join(parts)}\n\n"
            f"> {record['question']}\n\ngold: `{record['answer']}`\n\n````\n{record['completion']}\n````")


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
