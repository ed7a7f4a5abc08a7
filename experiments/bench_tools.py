"""Tool-integrated reasoning (issue 29): does a tiny policy that may run Python beat the same policy trained
without it, on arithmetic beyond its head, for the same training time?

    python experiments/bench_tools.py                    # seeds 0 1 2 -> experiments/results/tools.json and .png
    python experiments/bench_tools.py --seeds 0 --smoke  # the whole path in minutes, on tiny settings (runs/ only)

Per seed s, two runs of experiments/tiny_tools.yaml (model.seed = trainer.seed = s, the same problems):
  * tools: the job as written: SFT on reference solutions half of which call the tool (data.tool_traces 0.5), then
    GRPO with rollout.tools=[python];
  * plain: the same policy size and recipe without tools: SFT on the line-by-line solutions only
    (data.tool_traces=0), GRPO without rollout.tools, for twice the steps, a checkpoint every tenth of them; the
    checkpoint taken is the last one whose GRPO time (the steps' generate, reward, learn and weight-sync seconds from
    metrics.jsonl) is within the tools run's GRPO time: the same wall time. The warm starts take the same steps.
Each final policy is then sampled by one vLLM engine (weights swapped in place) on two held-out sets: the tool
task's (synthetic_tools, the job's num_eval problems) and the demo's (synthetic level 1, tiny_arith.yaml's 300),
at T=1 and at DeepSeek-R1's sampling (T=0.6, top-p 0.95), the tools policy with the tool available, the plain one
without. Reported per seed: pass@1 (with its standard error) of both, the gain in points, the tool calls per
answer, and the share of the tools run's GRPO step time spent waiting for the sandbox.

Targets (summary.targets_met, each met or not): the tools policy >= 20 points above the plain one on the tool
task at T=1 and at R1 sampling, every seed; the sandbox's share of step time <= 25%, every seed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from evals.report import write_atomically  # noqa: E402
from model import load_tokenizer  # noqa: E402
from problems import load_problems  # noqa: E402
from rl.api import train  # noqa: E402
from rl.config import load_config  # noqa: E402
from rl.demo import R1_SAMPLING, _git_commit, machine_description  # noqa: E402
from rl.evaluate import evaluate  # noqa: E402
from rl.rollout import RolloutWorker  # noqa: E402
from rl.tool_rollout import ToolSettings  # noqa: E402

CONFIG = REPO / "experiments" / "tiny_tools.yaml"
DEMO_CONFIG = REPO / "experiments" / "tiny_arith.yaml"
RESULT = REPO / "experiments" / "results" / "tools.json"
TARGETS = {"tool_task_gain_points": 20.0, "sandbox_share_of_step": 0.25}
SAMPLINGS = {"T=1": {"temperature": 1.0, "top_p": 1.0}, "R1": R1_SAMPLING}
STAGES = ("generate", "reward", "learn", "weight_sync")
SMOKE = ["sft.steps=20", "trainer.steps=2", "data.num_train=200", "data.num_eval=8", "rollout.prompts_per_step=4",
         "rollout.group_size=4", "rollout.eval_samples=2", "trainer.eval_every=0", "logging.progress=false",
         "logging.tensorboard=false"]


def step_records(run_dir: Path) -> list[dict]:
    """The GRPO steps' records of a run's metrics.jsonl, in step order."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if "time/generate_s" in r]


def step_seconds(record: dict) -> float:
    return sum(record.get(f"time/{stage}_s", 0.0) for stage in STAGES)


def sandbox_share(run_dir: Path) -> float:
    """Seconds the rollout workers waited for the sandbox over the seconds of the GRPO steps."""
    records = step_records(run_dir)
    return sum(r.get("time/tools_s", 0.0) for r in records) / max(sum(step_seconds(r) for r in records), 1e-9)


def grpo_evaluations(run_dir: Path) -> dict:
    """The run's held-out evaluations before and after GRPO (the job's own: T=1, rollout.eval_samples a problem):
    pass@1 and, with tools, the tool calls per answer, which show whether GRPO chose the tool."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if "eval/pass@1" in r]
    return {when: {key.removeprefix("eval/"): round(r[key], 4) for key in ("eval/pass@1", "eval/tool_calls_per_answer")
                   if key in r} for when, r in (("before_grpo", evaluations[0]), ("after_grpo", evaluations[-1]))}


def same_time_checkpoint(run_dir: Path, budget_s: float) -> tuple[Path, float, bool]:
    """The last checkpoint of `run_dir` whose cumulative GRPO step time is within budget_s (the first one if none
    is), its cumulative seconds, and whether the run went on past the budget (False: it ran out of steps first)."""
    elapsed, cumulative = 0.0, {}
    for record in step_records(run_dir):
        elapsed += step_seconds(record)
        cumulative[record["step"]] = elapsed
    saved = sorted(int(p.name.removeprefix("step_")) for p in (run_dir / "checkpoints").glob("step_*"))
    within = [step for step in saved if cumulative.get(step, float("inf")) <= budget_s] or saved[:1]
    step = within[-1]
    return run_dir / "checkpoints" / f"step_{step}", cumulative.get(step, 0.0), elapsed > budget_s


def train_pair(seed: int, root: Path, extra: list[str], log) -> dict:
    """The tools run and the plain run of one seed; where their final policies are and what they cost."""
    tools_dir, plain_dir = root / f"tools_seed{seed}", root / f"plain_seed{seed}"
    common = [f"model.seed={seed}", f"trainer.seed={seed}", "trainer.overwrite=true"]
    started = time.perf_counter()
    tools = train(CONFIG, [f"trainer.output_dir={tools_dir}", *common, *extra], log=log)
    tools_minutes = (time.perf_counter() - started) / 60
    budget = sum(step_seconds(r) for r in step_records(tools_dir))
    steps = 2 * tools["steps"]
    started = time.perf_counter()
    train(CONFIG, [f"trainer.output_dir={plain_dir}", *common, *extra, "rollout.tools=[]", "data.tool_traces=0",
                   f"trainer.steps={steps}", f"trainer.save_every={max(1, steps // 10)}"], log=log)
    plain_checkpoint, plain_seconds, past_budget = same_time_checkpoint(plain_dir, budget)
    return {"seed": seed, "tools_checkpoint": tools["checkpoint"], "plain_checkpoint": str(plain_checkpoint),
            "tools_grpo_seconds": round(budget, 1), "plain_grpo_seconds": round(plain_seconds, 1),
            "plain_ran_past_the_budget": past_budget, "tools_steps": tools["steps"],
            "plain_step": int(plain_checkpoint.name.removeprefix("step_")),
            "minutes": {"tools": round(tools_minutes, 2), "plain": round((time.perf_counter() - started) / 60, 2)},
            "sandbox_share_of_step": round(sandbox_share(tools_dir), 4),
            "job_evaluations": {"tools": grpo_evaluations(tools_dir), "plain": grpo_evaluations(plain_dir)},
            "tools_per_step": {key: round(sum(r.get(key, 0.0) for r in step_records(tools_dir))
                                          / max(len(step_records(tools_dir)), 1), 4)
                               for key in ("tools/calls_per_sample", "tools/observation_token_frac")}}


def evaluate_pair(worker: RolloutWorker, tokenizer, run: dict, sets: dict, config, tool_settings: ToolSettings
                  ) -> dict:
    """Both policies of a seed on every held-out set at every sampling (one engine, its weights swapped in place):
    pass@1 and its standard error, and the tool calls per answer."""
    checkpoints = {"tools": Path(run["tools_checkpoint"]), "plain": Path(run["plain_checkpoint"])}
    scores: dict = {}
    for policy, checkpoint in checkpoints.items():
        worker.load_weights((checkpoint / "model.safetensors").read_bytes())
        for set_name, problems in sets.items():
            for sampling, params in SAMPLINGS.items():
                result = evaluate(worker.generate, problems, tokenizer, k=config.rollout.eval_samples,
                                  max_tokens=config.rollout.max_new_tokens, seed=run["seed"],
                                  tools=tool_settings if policy == "tools" else None, name=set_name, **params)
                s = result["scores"]
                scores.setdefault(policy, {}).setdefault(set_name, {})[sampling] = {
                    "pass@1": round(s["pass@1"], 4), "pass@1_stderr": round(s["pass@1_stderr"], 4),
                    **({"tool_calls_per_answer": round(s["tool_calls_per_answer"], 3)}
                       if "tool_calls_per_answer" in s else {})}
    gains = {f"{set_name}_{sampling}": round(100 * (scores["tools"][set_name][sampling]["pass@1"]
                                                    - scores["plain"][set_name][sampling]["pass@1"]), 1)
             for set_name in sets for sampling in SAMPLINGS}
    return {"scores": scores, "gain_points": gains}


def summarise(runs: list[dict]) -> dict:
    gains = {key: [r["gain_points"][key] for r in runs] for key in runs[0]["gain_points"]}
    shares = [r["sandbox_share_of_step"] for r in runs]
    target = TARGETS["tool_task_gain_points"]
    return {"mean_gain_points": {k: round(sum(v) / len(v), 1) for k, v in gains.items()},
            "worst_gain_points": {k: min(v) for k, v in gains.items()},
            "worst_sandbox_share_of_step": max(shares),
            "targets_met": {f"tool_task_gain_>=_{target:g}_points_at_{sampling}_every_seed":
                            all(g >= target for g in gains[f"tool_task_{sampling}"]) for sampling in SAMPLINGS}
            | {f"sandbox_share_<=_{TARGETS['sandbox_share_of_step']:g}_every_seed":
               all(s <= TARGETS["sandbox_share_of_step"] for s in shares)}}


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib  # lazy: only the figure needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(runs[0]["gain_points"])
    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        axis.bar([k + i * width for k in range(len(keys))], [run["gain_points"][key] for key in keys], width,
                 label=f"seed {run['seed']}")
    axis.axhline(TARGETS["tool_task_gain_points"], color="grey", linestyle="--", label="target (tool task)")
    axis.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))], keys)
    axis.set_ylabel("pass@1, tools - plain (points)")
    axis.set_title("Tool policy against the same policy trained without tools, same GRPO time")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--smoke", action="store_true", help="tiny settings, results under runs/bench_tools_smoke")
    args = parser.parse_args()
    extra = SMOKE if args.smoke else []
    root = REPO / "runs" / ("bench_tools_smoke" if args.smoke else "bench_tools")
    result_path = root / "tools.json" if args.smoke else RESULT
    config = load_config(CONFIG, extra)
    demo = load_config(DEMO_CONFIG, [f"data.num_eval={config.data.num_eval}"] if args.smoke else [])
    sets = {"tool_task": load_problems(config.data)[1], "demo": load_problems(demo.data)[1]}
    tool_settings = ToolSettings.from_config(config.rollout)
    started = time.perf_counter()
    runs = [train_pair(seed, root, extra, log=print) for seed in args.seeds]  # each run starts and stops its Ray
    worker = RolloutWorker(runs[0]["tools_checkpoint"], max_model_len=256, quiet=True)  # then one engine scores all
    tokenizer = load_tokenizer(runs[0]["tools_checkpoint"])
    for run in runs:
        run |= evaluate_pair(worker, tokenizer, run, sets, config, tool_settings)
        print(json.dumps({"seed": run["seed"], "gain_points": run["gain_points"],
                          "sandbox_share_of_step": run["sandbox_share_of_step"]}))
    result = {"benchmark": "tools", "command": " ".join(["python", *sys.argv]),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": _git_commit(), "machine": machine_description(), "config": str(CONFIG.relative_to(REPO)),
              "overrides": extra, "held_out": {name: len(problems) for name, problems in sets.items()},
              "eval_samples": config.rollout.eval_samples, "samplings": SAMPLINGS, "targets": TARGETS,
              "minutes": round((time.perf_counter() - started) / 60, 1), "runs": runs, "summary": summarise(runs)}
    result_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(result_path, json.dumps(result, indent=2) + "\n")
    plot(runs, result_path.with_suffix(".png"))
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
