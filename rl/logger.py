"""Metrics of a run: JSON lines, TensorBoard, Weights & Biases when configured, and the final plot; and a few
sampled completions per step with their rewards and the reward functions' reasons (samples.jsonl), because a reward
hack shows in the text long before it shows in the numbers."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Sequence

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.jsonl"


class MetricsLogger:
    """Writes one record per step to metrics.jsonl and TensorBoard (and wandb if a project is set), and sampled
    completions (`log_samples`) to samples.jsonl and TensorBoard's text tab."""

    def __init__(self, folder: Path, jsonl: bool = True, tensorboard: bool = True, wandb_project: str | None = None,
                 config: dict | None = None, resume_step: int | None = None):
        """Open the run's logs, appending to what they hold.

        Args:
            folder: the run folder the files go into.
            jsonl, tensorboard, wandb_project: which of metrics.jsonl, TensorBoard and W&B to write.
            config: the run's config, for W&B.
            resume_step: for a resumed run, the step of the checkpoint it continues from (-1: it starts again at
                step 0). The stopped run's records of later steps, which the resumed run writes again, are removed
                from metrics.jsonl and samples.jsonl first (`truncate_records`), and TensorBoard drops its events of
                those steps. None: the files are appended to as they are.
        """
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            for name in (METRICS_FILE, SAMPLES_FILE):
                truncate_records(self.folder / name, resume_step)
        self.jsonl = (self.folder / METRICS_FILE).open("a") if jsonl else None
        self.samples = None  # samples.jsonl, opened by the first log_samples
        self.tensorboard = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # lazy: only runs that write TensorBoard pay its import

            self.tensorboard = SummaryWriter(str(self.folder / "tensorboard"),
                                             purge_step=None if resume_step is None else resume_step + 1)
        self.wandb = None
        if wandb_project:
            import wandb  # lazy: an optional dependency (pip install wandb), needed only with a project

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
        TensorBoard's text tab under "samples"."""
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
            import wandb  # lazy: optional, as above

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


def truncate_records(path: Path, last_step: int) -> None:
    """Keep only the records of steps up to `last_step` in a JSON Lines log (`metrics.jsonl`, `samples.jsonl`),
    and drop a line a killed run left cut short. The file is replaced atomically; a missing file stays missing."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("step"), int) or record["step"] <= last_step:
            kept.append(line + "\n")
    staged = path.with_name(f".tmp-{path.name}")
    staged.write_text("".join(kept))
    staged.replace(path)


def sample_records(step: int, batch: Any, k: int = 4, seed: int = 0,
                   transcript: Callable[[int], str] | None = None) -> list[dict[str, Any]]:
    """Up to `k` completions of one GRPO step, chosen to be read: the best and the worst of each of ceil(k / 2)
    groups drawn at random (seeded by `seed` and `step`, so a rerun picks the same ones), in batch order. Random
    groups, not the extreme ones: a hack that every sample of a group has found shows as well as a mixed group.

    Args:
        step: the step number the records are filed under.
        batch: the step's rl.batch.RolloutBatch with its rewards added (group ids, columns id/question/answer,
            completions, rewards, reward_components, reward_reasons).
        k: how many records to return (fewer when the batch has fewer than k / 2 groups); 0 = none.
        seed: the run's seed.
        transcript: sample index -> the completion with the tools' outputs in place (rollouts with tools), which the
            records add as "transcript" (made for the chosen samples only): `completion` is the policy's own text,
            what the rewards graded.

    Returns:
        JSON-serialisable dicts: step, problem_id, question, answer (gold), group and sample (indices in the batch),
        pick ("best" or "worst" of its group), completion, reward (the weighted total, None if nothing applied),
        group_rewards (the totals of its whole group), components ({function: score or None}) and reasons
        ({function: reason or None}).
    """
    if k <= 0 or not len(batch):
        return []
    group_ids = sorted(set(batch.group_ids.tolist()))
    rng = random.Random(seed * 1_000_003 + step)
    picks_per_group = 2 if len(batch) > len(group_ids) else 1  # a group of one has no separate worst
    chosen = sorted(rng.sample(group_ids, min(-(-k // picks_per_group), len(group_ids))))
    picks = [(g, pick) for g in chosen for pick in ("best", "worst")[:picks_per_group]][:k]
    return [_sample_record(step, batch, g, pick, transcript) for g, pick in picks]


def _sample_record(step: int, batch: Any, group: int, pick: str, transcript: Callable[[int], str] | None
                   ) -> dict[str, Any]:
    """The record of the best or worst completion of `group`. Ties go by batch order (worst: the first of the
    lowest, best: the last of the highest), so a group of equal rewards still shows two different completions."""
    indices = batch.group(group)
    totals = [None if math.isnan(r) else r for r in batch.rewards.tolist()]
    by_reward = sorted(indices, key=lambda i: -math.inf if totals[i] is None else totals[i])  # stable
    sample = by_reward[-1] if pick == "best" else by_reward[0]
    column = {name: values[sample] for name, values in batch.columns.items()}
    return {"step": step, "problem_id": column.get("id"), "question": column.get("question"),
            "answer": column.get("answer"), "group": group, "sample": sample, "pick": pick,
            "completion": batch.completions[sample],
            **({"transcript": transcript(sample)} if transcript is not None else {}), "reward": totals[sample],
            "group_rewards": [totals[i] for i in indices],
            "components": {name: values[sample] for name, values in batch.reward_components.items()},
            "reasons": {name: batch.reward_reasons.get(name, [None] * len(batch))[sample]
                        for name in batch.reward_components}}


def sample_markdown(record: dict[str, Any]) -> str:
    """One sample record as Markdown (TensorBoard's text tab renders it)."""
    parts = [f"{name} = {score}" + (f" ({record['reasons'][name]})" if record["reasons"].get(name) else "")
             for name, score in record["components"].items()]
    return (f"**{record['pick']}** of group {record['group']} ({record['problem_id']}): reward {record['reward']}, "
            f"group {record['group_rewards']}  \n{'; '.join(parts)}\n\n"
            f"> {record['question']}\n\ngold: `{record['answer']}`\n\n"
            f"````\n{record.get('transcript', record['completion'])}\n````")


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl (the last record wins for a step logged twice)."""
    by_step: dict[tuple[int, bool], dict] = {}
    for line in Path(path).read_text().splitlines():
        record = json.loads(line)
        by_step[(record["step"], "eval/pass@1" in record)] = record
    return [by_step[key] for key in sorted(by_step)]


def step_line(record: dict[str, Any], total_steps: int) -> str:
    """One plain line of a step's record, for logs that are not a terminal: step, reward, accuracy, kept groups,
    completion length, seconds; and the held-out scores when the step was evaluated."""
    parts = [f"step {record['step']}/{total_steps}"]
    if "reward/mean" in record:
        parts.append(f"reward {record['reward/mean']:.3f}")
        if "accuracy" in record:
            parts.append(f"accuracy {record['accuracy']:.3f}")
        parts.append(f"kept {record['groups/kept_frac']:.2f}")
        parts.append(f"length {record['completion/length_mean']:.0f}")
        seconds = sum(record.get(f"time/{stage}_s", 0.0) for stage in ("generate", "reward", "learn", "weight_sync"))
        parts.append(f"{seconds:.1f}s")
    if "eval/pass@1" in record:
        n = int(record.get("eval/n", 0)) or "n"
        parts.append(f"| held-out pass@1 {record['eval/pass@1']:.3f} ±{record['eval/pass@1_stderr']:.3f} "
                     f"maj@{n} {record['eval/maj@n']:.3f} pass@{n} {record['eval/pass@n']:.3f}")
    return "  ".join(parts)


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over up to `window` values (the first points average what there is)."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


EVAL_CURVES = {"eval/pass@1": "held-out pass@1"}  # what plot_run draws of the evaluations: metric -> label


def plot_run(metrics_path: Path, out: Path, title: str = "GRPO run", window: int = 10, xlabel: str = "GRPO step",
             curves: dict[str, str] = EVAL_CURVES) -> Path:
    """PNG of the training reward (each step faint, its moving average over `window` steps) and the held-out scores
    `curves` names (pass@1 by default) with their standard errors (the metric's `_stderr`), over the run's steps."""
    import matplotlib  # lazy: a second of import time that only plotting needs; Agg before pyplot (no screen)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [r for r in records if "reward/mean" in r and r["reward/mean"] == r["reward/mean"]]  # NaN: nothing scored
    evals = [r for r in records if any(name in r for name in curves)]
    figure, axis = plt.subplots(figsize=(8, 4.5))
    if train:
        steps, rewards = [r["step"] for r in train], [r["reward/mean"] for r in train]
        axis.plot(steps, rewards, color="tab:blue", alpha=0.25, linewidth=0.8, label="training reward (each step)")
        axis.plot(steps, moving_average(rewards, window), color="tab:blue",
                  label=f"training reward ({window}-step moving average)")
        if all("accuracy" in r for r in train):
            axis.plot(steps, moving_average([r["accuracy"] for r in train], window), color="tab:green",
                      label=f"training accuracy ({window}-step moving average)")
    for (name, label), color in zip(curves.items(), ("tab:orange", "tab:red", "tab:purple", "tab:brown")):
        scored = [r for r in evals if name in r]
        if scored:
            axis.errorbar([r["step"] for r in scored], [r[name] for r in scored],
                          yerr=[r.get(f"{name}_stderr", 0.0) for r in scored], fmt="o-", color=color, capsize=3,
                          label=f"{label} (± standard error)")
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("reward / accuracy")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
