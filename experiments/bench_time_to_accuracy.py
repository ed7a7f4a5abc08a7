"""Time to accuracy: wall time until GRPO lifts the held-out accuracy of one SFT-warmed policy, ours
(rl.trainer.GRPOTrainer with the demo's recipe, experiments/tiny_arith.yaml) against TRL's GRPOTrainer.

    python experiments/bench_time_to_accuracy.py                       # ours and TRL, seeds 0 and 1
    python experiments/bench_time_to_accuracy.py --systems ours_padded --seeds 0   # one more run, kept with the others
    python experiments/bench_time_to_accuracy.py --recheck-steps 15   # the machine as fast as when cached?

What is the same for every run:
  * the starting policy: the tiny preset (seed 0) after the demo's SFT warm start (200 steps), built once and
    cached in runs/time_to_accuracy/sft;
  * the task: the demo's 4000 training problems (synthetic level 1); the held-out set: its 300 problems;
  * the hyperparameters both trainers have: 32 prompts x 8 completions a step, one optimizer step per batch,
    64 new tokens at most, temperature 1, the DAPO loss (token mean), clip 0.2 / 0.28, no KL, group-scaled
    advantages, truncated completions masked, rewards math_accuracy + 0.2 * format, AdamW at 5e-5 (constant after
    5 warm-up steps, no weight decay), gradient clipping at 1.0, fp32, no rollout importance-sampling correction
    (ours has it off by default; TRL's would cost one more forward);
  * the evaluation: every saved policy (every --save-every steps) is scored afterwards by one vLLM engine with
    our evaluation: 300 problems x 8 samples at T=1, sampling seed 0 for every policy (pass@1's standard error
    is about 0.02).
What differs is what each system is: ours runs its default recipe (zero-variance groups dropped, packed learner
rows, Ray actors for vLLM, learner and rewards); TRL runs its fastest mode here, vLLM colocated in its process
(with the weight-sync fix of bench_grpo_vs_trl.py, without which that mode cannot load this policy), and draws
prompts with its own seeded sampler. A system's seed is its trainer seed (sampling, and TRL's prompt order).

Wall clock counts training only: from the first step's start, the sum of the steps' times (rollout, rewards,
learning, weight sync); start-up, checkpoint saving and evaluation are left out. Each (system, seed) run trains in
a child process of its own, one at a time on the quiet machine, and is cached in runs/time_to_accuracy/<system>_
seed<k> (timeline.json, and one evaluation per saved policy), so an interrupted benchmark continues where it stopped.

Result: the accuracy-versus-wall-time curve of every run (experiments/results/time_to_accuracy.png), the accuracy
TRL ends at (the mean of its seeds' last evaluations), and for every run the training time until its pass@1 first
reaches it (linear between the two evaluations around the crossing), and the same for a quarter, half and three
quarters of TRL's gain over the warm start. Target: ours at most 0.5x TRL's mean time to TRL's final accuracy,
every seed. Writes experiments/results/time_to_accuracy.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments"))

from bench_grpo_vs_trl import OFFLINE_ENV, fix_trl_weight_sync, redirect_output  # noqa: E402
from report import header  # noqa: E402

CONFIG = REPO / "experiments" / "tiny_arith.yaml"
ROOT = REPO / "runs" / "time_to_accuracy"
RESULT = REPO / "experiments" / "results" / "time_to_accuracy.json"
TARGET_RATIO = 0.5
# Our recipe's variants, as config overrides on top of tiny_arith.yaml (the levers' runs).
OURS = {"ours": [], "ours_padded": ["trainer.pack_sequences=false"],
        "ours_off_policy": ["trainer.one_step_off_policy=true", "algorithm.rollout_correction_cap=2.0"]}
SYSTEMS = [*OURS, "trl"]
EVAL_SAMPLES, EVAL_SEED = 8, 0


def load_recipe(overrides: list[str] = ()):
    from rl.config import load_config

    return load_config(CONFIG, list(overrides))


# ------------------------------------------------------------------------------------------------ the warm start


def warm_start() -> Path:
    """The demo's SFT-warmed tiny policy (model seed 0, trainer seed 0), built once."""
    import dataclasses

    from model.tokenizer import TOKENIZER_DIR
    from rl.api import model_init
    from problems import load_problems
    from rl.sft import sft_from_checkpoint

    config = load_recipe()
    folder, stamp = ROOT / "sft", ROOT / "sft" / "bench_key.json"
    key = {"sft": dataclasses.asdict(config.sft), "data": dataclasses.asdict(config.data), "model_seed": 0}
    if not (stamp.is_file() and json.loads(stamp.read_text()) == key):
        shutil.rmtree(folder, ignore_errors=True)
        init = model_init("tiny", ROOT / "init", seed=0)
        train, _ = load_problems(config.data)
        sft_from_checkpoint(init, folder, train, steps=config.sft.steps, batch_size=config.sft.batch_size,
                            lr=config.sft.lr, seed=0, threads=os.cpu_count() or 1, max_tokens=config.sft.max_tokens)
        stamp.write_text(json.dumps(key))
    # The shipped tokenizer's files, whenever the folder was built: the weights do not depend on them, but TRL's
    # decoding does (before the reasoning tags stopped being special tokens, TRL's format reward was always 0).
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(TOKENIZER_DIR / name, folder / name)
    return folder


# ------------------------------------------------------------------------------------------------ training runs


def save_policy_only(folder: Path) -> None:
    """Keep a checkpoint's policy, drop the optimizer state (only the policy is evaluated)."""
    (folder / "learner_state.pt").unlink(missing_ok=True)


def train_ours(args: dict) -> None:
    """One run of our trainer; writes timeline.json: training seconds and step metrics at every saved step."""
    redirect_output(Path(args["run"]) / "train.log")
    from rl.trainer import GRPOTrainer

    run = Path(args["run"])
    overrides = [f"model.path={args['policy']}", "sft.steps=0", f"trainer.steps={args['steps']}",
                 "trainer.eval_every=0", "trainer.save_every=0", f"trainer.seed={args['seed']}",
                 f"trainer.output_dir={run / 'trainer'}", "trainer.overwrite=true", "logging.tensorboard=false",
                 "logging.progress=false", *OURS[args["system"]]]
    trainer = GRPOTrainer(load_recipe(overrides), log=lambda *a: print(*a, flush=True))
    trainer.setup()
    timeline, train_s = [], 0.0
    try:
        while trainer.step < args["steps"]:
            started = time.perf_counter()
            metrics = trainer.train_step()
            train_s += time.perf_counter() - started
            trainer.step += 1
            print(f"step {trainer.step}: {time.perf_counter() - started:.2f}s reward {metrics['reward/mean']:.3f} "
                  f"kept {metrics['groups/kept_frac']:.2f}", flush=True)
            timeline.append({"step": trainer.step, "train_s": train_s,
                             **{k: v for k, v in metrics.items() if isinstance(v, float) and k.startswith(
                                 ("time/", "reward/", "groups/", "completion/", "learner/", "prompts/"))}})
            if trainer.step % args["save_every"] == 0 or trainer.step == args["steps"]:
                folder = run / "checkpoints" / f"step_{trainer.step}"
                trainer.learners.save(str(folder))
                save_policy_only(folder)
                timeline[-1]["checkpoint"] = str(folder)
        (run / "timeline.json").write_text(json.dumps(timeline, indent=1))
    finally:
        trainer.shutdown()


def train_trl(args: dict) -> None:
    """One run of TRL's GRPOTrainer (vLLM colocate mode) with the recipe's hyperparameters; writes timeline.json."""
    redirect_output(Path(args["run"]) / "train.log")
    from model.vllm_engine import CPU_ENV_DEFAULTS

    for key, value in CPU_ENV_DEFAULTS.items():  # the vLLM CPU settings our rollout worker uses
        os.environ.setdefault(key, value)
    import warnings

    import torch
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    import rewards
    from model import load_tokenizer
    from problems import load_problems, to_hf_dataset

    torch.set_num_threads(os.cpu_count() or 1)
    recipe = load_recipe()
    rollout, algorithm = recipe.rollout, recipe.algorithm
    run = Path(args["run"])
    train, _ = load_problems(recipe.data)
    config = GRPOConfig(
        output_dir=str(run / "checkpoints"), report_to=[], use_cpu=True, bf16=False, fp16=False, seed=args["seed"],
        per_device_train_batch_size=rollout.prompts_per_step * rollout.group_size, gradient_accumulation_steps=1,
        steps_per_generation=1, num_generations=rollout.group_size, max_completion_length=rollout.max_new_tokens,
        temperature=rollout.temperature, top_p=rollout.top_p, num_iterations=algorithm.num_iterations,
        loss_type=algorithm.loss_type, beta=algorithm.beta, epsilon=algorithm.epsilon_low,
        epsilon_high=algorithm.epsilon_high, scale_rewards="group" if algorithm.scale_rewards else "none",
        mask_truncated_completions=algorithm.mask_truncated_completions, reward_weights=recipe.reward.weights,
        learning_rate=algorithm.lr, lr_scheduler_type="constant_with_warmup", warmup_steps=algorithm.warmup_steps,
        weight_decay=algorithm.weight_decay, max_grad_norm=algorithm.max_grad_norm, max_steps=args["steps"],
        logging_steps=1, save_strategy="steps", save_steps=args["save_every"], save_only_model=True,
        dataloader_num_workers=0, disable_tqdm=True, use_vllm=True, vllm_mode="colocate",
        vllm_importance_sampling_correction=False,
        vllm_max_model_length=recipe.data.max_prompt_tokens + rollout.max_new_tokens)
    if recipe.reward.functions != ["math_accuracy", "format"]:
        raise RuntimeError(f"the recipe's rewards changed ({recipe.reward.functions}): update train_trl")
    model = AutoModelForCausalLM.from_pretrained(args["policy"], dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(model=model, reward_funcs=[rewards.math_accuracy, rewards.format_reward], args=config,
                              train_dataset=to_hf_dataset(train), processing_class=load_tokenizer(args["policy"]))
    fix_trl_weight_sync(trainer)
    timeline: list[dict] = []
    clock = {"train_s": 0.0}

    class Timeline(TrainerCallback):
        """Time each optimizer step (generation happens inside it) and note the saved steps."""

        def on_step_begin(self, *_, **__):
            clock["started"] = time.perf_counter()

        def on_step_end(self, _args, state, *_, **__):
            clock["train_s"] += time.perf_counter() - clock["started"]
            timeline.append({"step": state.global_step, "train_s": clock["train_s"]})
            print(f"step {state.global_step}: {time.perf_counter() - clock['started']:.2f}s", flush=True)

        def on_log(self, _args, state, _control, logs=None, **__):
            if timeline and logs:
                timeline[-1] |= {f"trl/{k}": v for k, v in logs.items() if isinstance(v, (int, float))}

        def on_save(self, _args, state, *_, **__):
            timeline[-1]["checkpoint"] = str(run / "checkpoints" / f"checkpoint-{state.global_step}")

    trainer.add_callback(Timeline())
    trainer.train()
    (run / "timeline.json").write_text(json.dumps(timeline, indent=1))


def child(target: str, args: dict) -> None:
    os.environ.update(OFFLINE_ENV)
    try:
        {"ours": train_ours, "trl": train_trl}[target](args)
    except BaseException:  # noqa: BLE001 - the parent reads the log and the missing timeline
        traceback.print_exc()
        raise


def train_run(system: str, seed: int, policy: Path, steps: int, save_every: int, root: Path = ROOT) -> Path:
    """Train one (system, seed) run in a child process unless its timeline is already there."""
    run = root / f"{system}_seed{seed}"
    timeline = run / "timeline.json"
    settings = {"steps": steps, "save_every": save_every, "policy": str(policy)}
    if timeline.is_file() and json.loads((run / "settings.json").read_text()) == settings:
        return run
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    (run / "settings.json").write_text(json.dumps(settings))
    started = time.perf_counter()
    print(f"training {run.name} (log {run / 'train.log'})", flush=True)
    process = mp.get_context("spawn").Process(
        target=child, args=("trl" if system == "trl" else "ours",
                            {"system": system, "seed": seed, "run": str(run), **settings}))
    process.start()
    process.join()
    if process.exitcode != 0 or not timeline.is_file():
        raise RuntimeError(f"{run.name} failed (exit code {process.exitcode}): see {run / 'train.log'}")
    print(f"  done in {time.perf_counter() - started:.0f}s", flush=True)
    return run


def recheck_machine(system: str, steps: int, policy: Path) -> dict | None:
    """Runs are cached across sessions, and a machine of one kind can run slower one day than another: train the
    first `steps` steps of `system`'s cached seed-0 run again, in a scratch folder, and compare their median step
    time with the cached run's over the same steps (same seed, same prompts)."""
    cached = ROOT / f"{system}_seed0" / "timeline.json"
    if not cached.is_file():
        return None
    scratch = ROOT / "recheck"
    shutil.rmtree(scratch / f"{system}_seed0", ignore_errors=True)
    again = train_run(system, 0, policy, steps, steps, root=scratch)
    shutil.rmtree(again / "checkpoints", ignore_errors=True)

    def median_step_s(timeline_file: Path) -> float:
        return statistics.median(step_seconds(json.loads(timeline_file.read_text())[:steps]))

    now, then = median_step_s(again / "timeline.json"), median_step_s(cached)
    result = {"run": f"{system}_seed0", "steps": steps, "date": datetime.date.today().isoformat(),
              "step_s_median_now": round(now, 3), "step_s_median_cached": round(then, 3),
              "ratio_now_over_cached": round(now / then, 3)}
    (scratch / "result.json").write_text(json.dumps(result, indent=1))
    return result


# ------------------------------------------------------------------------------------------------ evaluation


class Evaluator:
    """One vLLM engine that scores many policies of the tiny architecture: each is loaded in place."""

    def __init__(self, policy: Path):
        from model import load_tokenizer
        from problems import load_problems
        from rl.rollout import RolloutWorker

        recipe = load_recipe()
        _, self.problems = load_problems(recipe.data)
        self.tokenizer = load_tokenizer(policy)
        self.max_tokens = recipe.rollout.max_new_tokens
        self.worker = RolloutWorker(str(policy), recipe.data.max_prompt_tokens + self.max_tokens, seed=EVAL_SEED,
                                    quiet=True)

    def score(self, checkpoint: Path) -> dict:
        """pass@1 (with its standard error), maj@8 and pass@8 of the policy in a checkpoint folder."""
        from rl.evaluate import evaluate
        from rl.policy import checkpoint_state_dict, load_policy
        from rl.weight_sync import serialize_weights

        # Through our loader and back to checkpoint layout: TRL's (transformers') folders and ours alike.
        self.worker.load_weights(serialize_weights(checkpoint_state_dict(load_policy(checkpoint))))
        result = evaluate(self.worker.generate, self.problems, self.tokenizer, k=EVAL_SAMPLES,
                          max_tokens=self.max_tokens, temperature=1.0, seed=EVAL_SEED)
        return {k: result["scores"][k] for k in ("pass@1", "pass@1_stderr", "maj@n", "pass@n", "seconds")}


def evaluate_run(run: Path, evaluator: Evaluator, start: dict) -> list[dict]:
    """The run's curve: (training seconds, step, scores) at step 0 (the warm start) and every saved step;
    scores are cached in the run folder."""
    cache_file = run / "evaluations.json"
    cache = json.loads(cache_file.read_text()) if cache_file.is_file() else {}
    curve = [{"step": 0, "train_s": 0.0, **start}]
    for entry in json.loads((run / "timeline.json").read_text()):
        if "checkpoint" not in entry:
            continue
        if entry["checkpoint"] not in cache:
            cache[entry["checkpoint"]] = evaluator.score(Path(entry["checkpoint"]))
            cache_file.write_text(json.dumps(cache, indent=1))
            print(f"  {run.name} step {entry['step']}: pass@1 {cache[entry['checkpoint']]['pass@1']:.3f}", flush=True)
        curve.append({"step": entry["step"], "train_s": entry["train_s"], **cache[entry["checkpoint"]]})
    return curve


# ------------------------------------------------------------------------------------------------ summary


def time_to_reach(curve: list[dict], accuracy: float) -> float | None:
    """Training seconds until pass@1 first reaches accuracy (linear between the evaluations around the crossing);
    None if it never does."""
    for before, after in zip(curve, curve[1:]):
        if after["pass@1"] >= accuracy:
            if before["pass@1"] >= accuracy:
                return before["train_s"]
            share = (accuracy - before["pass@1"]) / (after["pass@1"] - before["pass@1"])
            return before["train_s"] + share * (after["train_s"] - before["train_s"])
    return None


def step_seconds(timeline: list[dict]) -> list[float]:
    """Each step's seconds, from a timeline's cumulative training seconds."""
    times = [entry["train_s"] for entry in timeline]
    return [b - a for a, b in zip([0.0, *times], times)]


def step_costs(run: Path) -> dict:
    """Median seconds per step and, for ours, its parts."""
    timeline = json.loads((run / "timeline.json").read_text())
    step_s = step_seconds(timeline)
    costs = {"step_s_median": round(statistics.median(step_s), 3), "steps": len(timeline),
             "train_s": round(timeline[-1]["train_s"], 1)}
    for key in ("time/generate_s", "time/reward_s", "time/learn_s", "time/weight_sync_s", "groups/kept_frac",
                "learner/padding_frac"):
        values = [entry[key] for entry in timeline if key in entry]
        if values:
            costs[key + "_median" if key.startswith("time/") else key + "_mean"] = round(
                statistics.median(values) if key.startswith("time/") else statistics.mean(values), 3)
    prediction = zero_variance_prediction(timeline)
    if prediction:
        costs["zero_variance_prediction"] = prediction
    return costs


def zero_variance_prediction(timeline: list[dict]) -> dict | None:
    """How well a prompt's last group predicts that its next one is zero-variance too (GRESO's premise), over the
    run's revisits (rl.prompt_filter's metrics, logged whether or not it skips): precision, recall, and the share
    of the revisited prompts' generation that skipping every predicted one would have saved."""
    seen = sum(entry.get("prompts/seen_before", 0.0) for entry in timeline)
    if not seen:
        return None
    predicted = sum(entry["prompts/predicted_zero_variance"] for entry in timeline)
    hits = sum(entry["prompts/prediction_hits"] for entry in timeline)
    flat = sum(entry["prompts/zero_variance_seen_before"] for entry in timeline)
    return {"revisited_prompts": int(seen), "zero_variance_among_revisited": round(flat / seen, 3),
            "predicted": int(predicted), "precision": round(hits / predicted, 3) if predicted else None,
            "recall": round(hits / flat, 3) if flat else None,
            "revisited_generation_skippable": round(predicted / seen, 3),
            "revisited_zero_variance_generation_avoided": round(hits / seen, 3)}


def summarise(curves: dict[str, list[dict]], costs: dict[str, dict]) -> dict:
    """The target (TRL's final accuracy), each run's time to it and its ratio to TRL's mean time; the same at a
    quarter, half and three quarters of TRL's gain over the warm start, where a noisy last evaluation weighs less.
    A TRL seed that ends below the target counts its whole training time (which flatters TRL, not us); a run of
    ours that never reaches a level has no ratio (None)."""
    trl = [name for name in curves if name.startswith("trl_")]
    if not trl:
        return {"note": "no TRL run: no target accuracy"}
    start = curves[trl[0]][0]["pass@1"]
    target = statistics.mean(curves[name][-1]["pass@1"] for name in trl)
    levels = {}
    for share in (0.25, 0.5, 0.75, 1.0):
        accuracy = start + share * (target - start)
        reach = {name: time_to_reach(curve, accuracy) for name, curve in curves.items()}
        trl_mean = statistics.mean(reach[name] if reach[name] is not None else curves[name][-1]["train_s"]
                                   for name in trl)
        levels[f"{share:.0%} of TRL's gain"] = {
            "accuracy": round(accuracy, 4),
            "seconds": {name: None if t is None else round(t, 1) for name, t in reach.items()},
            "trl_mean_seconds": round(trl_mean, 1),
            "ratio_to_trl": {name: None if t is None else round(t / trl_mean, 3) for name, t in reach.items()
                             if not name.startswith("trl_")}}
    final = levels["100% of TRL's gain"]
    ours = [ratio for name, ratio in final["ratio_to_trl"].items() if name.startswith("ours_seed")]
    return {"start_accuracy": round(start, 4),
            "target_accuracy": round(target, 4),
            "target_accuracy_is": "mean over TRL's seeds of its last evaluation's pass@1",
            "ratio_to_trl": final["ratio_to_trl"],
            "target_ratio": TARGET_RATIO,
            "target_met_every_seed": bool(ours) and all(r is not None and r <= TARGET_RATIO for r in ours),
            "levels": levels,
            "final_accuracy": {name: curve[-1]["pass@1"] for name, curve in curves.items()},
            "train_s": {name: costs[name]["train_s"] for name in costs},
            "step_s_median": {name: costs[name]["step_s_median"] for name in costs}}


def plot(curves: dict[str, list[dict]], target: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"ours": "tab:blue", "ours_padded": "tab:cyan", "ours_off_policy": "tab:green", "trl": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in sorted(curves.items()):
        system = name.rsplit("_seed", 1)[0]
        ax.errorbar([p["train_s"] / 60 for p in curve], [p["pass@1"] for p in curve],
                    yerr=[p["pass@1_stderr"] for p in curve], label=name, color=colours.get(system, "gray"),
                    marker="o", markersize=3, capsize=2, linestyle="-" if name.endswith("seed0") else "--")
    if target is not None:
        ax.axhline(target, color="gray", linewidth=0.8, linestyle=":", label=f"TRL's final pass@1 ({target:.3f})")
    ax.set_xlabel("training wall time (minutes; start-up, saving and evaluation excluded)")
    ax.set_ylabel("held-out pass@1 (300 problems x 8, T=1)")
    ax.set_title("GRPO time to accuracy from one SFT policy: ours vs TRL (2-core CPU)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", default="ours,trl", help=f"comma-separated, of {', '.join(SYSTEMS)}")
    parser.add_argument("--seeds", default="0,1", help="trainer seeds, comma-separated")
    parser.add_argument("--steps", type=int, default=110, help="GRPO steps of a TRL run (the demo's)")
    parser.add_argument("--ours-steps", type=int, default=None,
                        help="GRPO steps of a run of ours (default --steps); more lets a faster system show where "
                             "it crosses TRL's final accuracy")
    parser.add_argument("--save-every", type=int, default=10, help="steps between evaluated policies")
    parser.add_argument("--recheck-steps", type=int, default=0,
                        help="train the first N steps of TRL's cached seed-0 run again and report today's step "
                             "time over the cached one (the machine's drift since it was trained)")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown:
        parser.error(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    args.ours_steps = args.ours_steps or args.steps
    if min(args.steps, args.ours_steps, args.save_every) < 1:
        parser.error("--steps, --ours-steps and --save-every must be >= 1")

    def steps_of(system: str) -> int:
        return args.ours_steps if system in OURS else args.steps
    os.environ.update(OFFLINE_ENV)
    ROOT.mkdir(parents=True, exist_ok=True)
    policy = warm_start()
    for system in systems:
        for seed in seeds:
            train_run(system, seed, policy, steps_of(system), args.save_every)

    if args.recheck_steps:
        recheck_machine("trl", args.recheck_steps, policy)
    recheck_file = ROOT / "recheck" / "result.json"
    recheck = json.loads(recheck_file.read_text()) if recheck_file.is_file() else None

    def settings_of(run: Path) -> dict:
        return {"steps": steps_of(run.name.rsplit("_seed", 1)[0]), "save_every": args.save_every,
                "policy": str(policy)}

    # Every finished run with these settings goes into the result, not only this invocation's.
    runs = sorted(run for run in ROOT.glob("*_seed*") if (run / "timeline.json").is_file()
                  and run.name.rsplit("_seed", 1)[0] in SYSTEMS
                  and json.loads((run / "settings.json").read_text()) == settings_of(run))
    evaluator = Evaluator(policy)
    start_file = ROOT / "sft_evaluation.json"
    if not start_file.is_file():
        start_file.write_text(json.dumps(evaluator.score(policy)))
    start = json.loads(start_file.read_text())
    curves = {run.name: evaluate_run(run, evaluator, start) for run in runs}
    costs = {run.name: step_costs(run) for run in runs}
    summary = summarise(curves, costs)
    plot_path = args.out.with_suffix(".png")
    plot(curves, summary.get("target_accuracy"), plot_path)

    report = header("GRPO wall time to a held-out accuracy from one SFT-warmed tiny policy: ours "
                    "(experiments/tiny_arith.yaml's recipe) vs TRL GRPOTrainer (vLLM colocate)",
                    packages=("torch", "transformers", "trl", "vllm")) | {
        "setup": {"steps": {"trl": args.steps, "ours": args.ours_steps}, "evaluated_every": args.save_every,
                  "evaluation": f"{EVAL_SAMPLES} samples x 300 held-out problems, T=1, sampling seed {EVAL_SEED}",
                  "warm_start": "tiny preset (seed 0) + the recipe's SFT (runs/time_to_accuracy/sft)",
                  "wall_clock": "sum of step times: start-up, checkpoint saving and evaluation excluded",
                  "ours_variants": OURS},
        "summary": summary,
        "costs": costs,
        "curves": {name: [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in point.items()}
                          for point in curve] for name, curve in curves.items()},
        "machine_recheck": recheck,
        "plot": plot_path.name,
    }
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
