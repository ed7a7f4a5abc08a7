"""Benchmark one GRPO step of ours (rl.trainer.GRPOTrainer: vLLM rollouts, learner and rewards in Ray actors)
against TRL's GRPOTrainer, on the same tiny policy weights, prompts, group size, batch, lengths, rewards and loss.

    nice -n 10 python experiments/bench_grpo_vs_trl.py [--steps 4 --group-size 8 --prompts-per-step 8 \
        --max-new-tokens 64 --modes trl,trl_vllm_colocate]

Every system runs in its own child process (own torch threads, environment and logs) and waits between steps;
the parent makes them take turns: ours step k, TRL step k, TRL-vLLM step k, then step k+1. Step 0 is a warm-up
and not counted; the figures are medians over the measured steps. Start-up (Ray, the vLLM engine, the learner;
TRL's model load and trainer construction) is timed apart and not part of the per-step time.

What "the same" means here:
  * weights: one freshly initialised `tiny` checkpoint (rl.api.model_init, seed 0) read by both; ours serves it
    with vLLM and trains our DeepSeek-V3 Transformer, TRL generates and trains transformers' DeepseekV3ForCausalLM.
    The untrained policy almost never emits eos (vocabulary 2048), so completions run to max_new_tokens on both
    sides: the work per step is pinned by the length limit (mean lengths are reported). `--sft-steps N` warms the
    checkpoint first instead (realistic, shorter completions; not used for the recorded results).
  * prompts: our PromptCursor order over the tiny_arith training problems; TRL gets them in that order
    (shuffle_dataset=False), as conversational prompts through the same chat template. Each system reports the
    SHA-1 of the prompt token ids it generated from per step; the parent checks they agree.
  * batch: prompts_per_step x group_size completions, one optimizer step per GRPO step (ours mini_batches=1; TRL
    per_device_train_batch_size = the batch, gradient_accumulation_steps = steps_per_generation = 1).
  * rewards math_accuracy + 0.2 * format; loss dapo, eps 0.2/0.28, beta 0, group-scaled advantages, no
    zero-variance filtering or truncation masking (TRL has neither by default), AdamW lr 1e-4 constant, clip 1.0,
    temperature 1, top_p 1, fp32.
Both take the old logprobs from the training forward when fully on-policy (one iteration, one mini-batch), so
neither makes an extra forward pass: TRL's vLLM importance-sampling correction (on by default, one more forward)
is turned off, as ours has none. TRL's vLLM colocate mode needs a fix of its weight sync to run on this policy at
all (TRL_SYNC_FIX below, recorded in the results).

Rollout tokens/s = generated completion tokens / time spent generating (ours: `time/generate_s`, the Ray call to
the vLLM worker; TRL: its `_generate_single_turn`). Writes experiments/results/grpo_vs_trl.json.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULT = REPO / "experiments" / "results" / "grpo_vs_trl.json"
CONFIG = REPO / "experiments" / "tiny_arith.yaml"
TARGET = 0.5
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false", "WANDB_DISABLED": "true", "WANDB_MODE": "disabled",
               "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
               # Ray starts its workers at +15 niceness by default; keep our actors at the TRL process's priority
               # (the machine is shared: other jobs' load would otherwise starve only our side)
               "RAY_worker_niceness": "0"}
REWARD_WEIGHTS = [1.0, 0.2]


def prompts_sha(prompt_ids: list[list[int]]) -> str:
    return hashlib.sha1(json.dumps([list(map(int, p)) for p in prompt_ids]).encode()).hexdigest()[:12]


def training_problems() -> tuple[list, int]:
    """The job file's training problems and data seed, loaded as our trainer loads them (problems.load_problems: the
    synthetic training stream depends on num_eval too, so it is not re-derived here)."""
    from rl.config import load_config
    from problems import load_problems

    data = load_config(CONFIG).data
    return load_problems(data)[0], data.seed


def problem_order(n: int) -> list:
    """The first n problems our trainer's PromptCursor hands out (same problems, seed and order)."""
    from rl.prompt_cursor import PromptCursor

    train, seed = training_problems()
    return PromptCursor(train, seed=seed).next_batch(n)


def redirect_output(log_path: Path) -> None:
    """Send this child's stdout/stderr (vLLM, Ray, transformers chatter) to its own log file."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)


def error_text(error: BaseException) -> str:
    """The exception, where it was raised, and the innermost TRL frame that led there."""
    text = "".join(traceback.format_exception_only(type(error), error)).strip()
    frames = traceback.extract_tb(error.__traceback__)
    if frames:
        last = frames[-1]
        text += f" (raised at {Path(last.filename).name}:{last.lineno} in {last.name}"
        caller = next((f for f in reversed(frames) if "/trl/" in f.filename), None)
        if caller is not None and caller is not last:
            text += f", called from trl {Path(caller.filename).name}:{caller.lineno} in {caller.name}"
        text += ")"
    return text


# ------------------------------------------------------------------------------------------------ ours


def run_ours(conn, args: dict) -> None:
    redirect_output(Path(args["log"]))
    try:
        import torch

        torch.set_num_threads(args["threads"])  # the driver; the learner and vLLM worker set their own
        from rl.config import load_config
        from rl.trainer import GRPOTrainer

        steps = args["rounds"]
        overrides = [f"model.path={args['checkpoint']}", "sft.steps=0",
                     f"rollout.group_size={args['group_size']}", f"rollout.prompts_per_step={args['prompts']}",
                     f"rollout.max_new_tokens={args['max_new_tokens']}", "algorithm.mini_batches=1",
                     "algorithm.num_iterations=1", "algorithm.loss_type=dapo",
                     "algorithm.drop_zero_variance_groups=false", "algorithm.mask_truncated_completions=false",
                     f"trainer.steps={steps}", "trainer.eval_every=0", "trainer.save_every=0",
                     f"trainer.output_dir={args['out']}", "logging.jsonl=false", "logging.tensorboard=false",
                     "logging.progress=false", f"ray.num_cpus={args['ray_cpus']}",
                     f"rollout.threads={args['rollout_threads']}"]
        config = load_config(CONFIG, overrides)
        trainer = GRPOTrainer(config, log=lambda *a: print(*a, flush=True))
        started = time.perf_counter()
        trainer.setup()
        setup_s = time.perf_counter() - started
        seen: list[str] = []
        start_rollouts = trainer.start_rollouts  # where a step's prompts are sent to the rollout workers

        def hashed_start_rollouts(step):
            pending = start_rollouts(step)
            seen.append(prompts_sha(pending.prompts))
            return pending

        trainer.start_rollouts = hashed_start_rollouts
        conn.send({"ready": True, "setup_s": setup_s, "startup_s": trainer.timings.get("time/startup_s")})
    except BaseException as error:  # noqa: BLE001 - reported to the parent as the mode's result
        traceback.print_exc()
        conn.send({"ready": False, "error": error_text(error)})
        return
    try:
        while conn.recv() == "step":
            started = time.perf_counter()
            metrics = trainer.train_step()
            wall = time.perf_counter() - started
            trainer.step += 1
            keep = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and (
                k.startswith(("time/", "throughput/", "completion/")))}
            conn.send({"step_s": wall, "prompts_sha": seen[-1], **keep,
                       "generated_tokens": metrics["completion/length_mean"] * args["prompts"] * args["group_size"]})
    except BaseException as error:  # noqa: BLE001
        traceback.print_exc()
        conn.send({"error": error_text(error)})
    finally:
        trainer.shutdown()


# ------------------------------------------------------------------------------------------------ TRL


def run_trl(conn, args: dict) -> None:
    redirect_output(Path(args["log"]))
    mode = args["mode"]
    try:
        if mode == "trl_vllm_colocate":
            from model.vllm_engine import CPU_ENV_DEFAULTS

            for key, value in CPU_ENV_DEFAULTS.items():  # the same vLLM CPU settings our rollout worker uses
                os.environ.setdefault(key, value)
        import torch

        torch.set_num_threads(args["threads"])
        import warnings

        from transformers import AutoModelForCausalLM, TrainerCallback
        from trl import GRPOConfig, GRPOTrainer

        import rewards
        from model import load_tokenizer
        from problems import to_hf_dataset

        problems = problem_order(args["prompts"] * args["rounds"])
        batch = args["prompts"] * args["group_size"]
        config = GRPOConfig(
            output_dir=args["out"], report_to=[], use_cpu=True, bf16=False, fp16=False, seed=args["seed"],
            per_device_train_batch_size=batch, gradient_accumulation_steps=1, steps_per_generation=1,
            num_generations=args["group_size"], max_completion_length=args["max_new_tokens"],
            temperature=1.0, top_p=1.0, num_iterations=1, loss_type="dapo", beta=0.0, epsilon=0.2,
            epsilon_high=0.28, scale_rewards="group", mask_truncated_completions=False,
            reward_weights=REWARD_WEIGHTS, learning_rate=1e-4, lr_scheduler_type="constant", warmup_steps=0,
            weight_decay=0.0, max_grad_norm=1.0, max_steps=args["rounds"], logging_steps=1, save_strategy="no",
            shuffle_dataset=False, dataloader_num_workers=0, disable_tqdm=True,
            use_vllm=mode == "trl_vllm_colocate", vllm_mode="colocate", vllm_importance_sampling_correction=False,
            vllm_max_model_length=args["max_prompt_tokens"] + args["max_new_tokens"],
        )
        started = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(args["checkpoint"], dtype=torch.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = GRPOTrainer(model=model, reward_funcs=[rewards.math_accuracy, rewards.format_reward],
                                  args=config, train_dataset=to_hf_dataset(problems),
                                  processing_class=load_tokenizer(args["checkpoint"]))
        if mode == "trl_vllm_colocate":
            fix_trl_weight_sync(trainer)
        setup_s = time.perf_counter() - started
    except BaseException as error:  # noqa: BLE001
        traceback.print_exc()
        conn.send({"ready": False, "error": error_text(error)})
        return

    phases: dict[str, float] = {}
    seen: list[str] = []
    generated: list[int] = []

    def timed(name, function):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t
        return wrapper

    generate_single_turn = trainer._generate_single_turn

    def generate_hashed(prompt_ids, *a, **k):
        seen.append(prompts_sha(prompt_ids[::args["group_size"]]))
        completion_ids, logprobs = generate_single_turn(prompt_ids, *a, **k)
        generated.append(sum(len(c) for c in completion_ids))
        return completion_ids, logprobs

    trainer._generate_single_turn = timed("generate", generate_hashed)
    trainer._calculate_rewards = timed("reward", trainer._calculate_rewards)
    clock = {}

    class Turns(TrainerCallback):
        """Hand control back to the parent after every optimizer step; time a step from resume to step end."""

        def on_train_begin(self, *_, **__):
            conn.send({"ready": True, "setup_s": setup_s})
            self.wait()

        def on_step_end(self, _args, state, control, **__):
            wall = time.perf_counter() - clock["resumed"]
            n = generated[-1] if generated else 0
            conn.send({"step_s": wall, "prompts_sha": seen[-1] if seen else None, "generated_tokens": n,
                       "completion/length_mean": n / batch,
                       **{f"time/{k}_s": v for k, v in phases.items()},
                       "throughput/rollout_tokens_per_s": n / max(phases.get("generate", 0.0), 1e-9)})
            if not self.wait():
                control.should_training_stop = True

        def wait(self) -> bool:
            go = conn.recv() == "step"
            phases.clear()
            clock["resumed"] = time.perf_counter()
            return go

    trainer.add_callback(Turns())
    try:
        trainer.train()
    except BaseException as error:  # noqa: BLE001
        traceback.print_exc()
        conn.send({"error": error_text(error)})


TRL_SYNC_FIX = ("TRL 1.16's colocate weight sync loads transformers-5's in-memory tensors one by one through vLLM's "
                "model.load_weights: the fused expert names are rejected ('Parameter' object has no attribute "
                "'weight_loader') and MLA's absorbed weights cannot be reloaded that way; the benchmark loads the "
                "checkpoint-layout tensors with vLLM's in-place reload and re-packs the CPU fused-MoE weights, "
                "exactly as our own weight sync does (rl.weight_sync.reload_in_place), so that the mode runs")


def fix_trl_weight_sync(trainer) -> None:
    """Make TRL's vLLM colocate mode load the DeepSeek-V3 policy's weights correctly (see TRL_SYNC_FIX)."""
    from rl.policy import checkpoint_state_dict
    from rl.weight_sync import reload_in_place

    generation = trainer.vllm_generation

    def sync_weights():
        runner = generation.llm.llm_engine.model_executor.driver_worker.model_runner
        reload_in_place(runner, checkpoint_state_dict(generation.model))
        generation.llm.reset_prefix_cache()

    generation.sync_weights = sync_weights


def run_sft(checkpoint: str, out: str, steps: int, threads: int):
    from rl.sft import sft_from_checkpoint

    train, seed = training_problems()
    sft_from_checkpoint(checkpoint, out, train, steps=steps, batch_size=32, lr=1e-3, seed=seed, threads=threads)


# ------------------------------------------------------------------------------------------------ parent


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of a process and all its descendants (for ours: the Ray daemons and actors,
    vLLM, the reward pool; for TRL: the trainer and its reward pool), read from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    parents, cpu = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
    total, stack = 0.0, [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack += children.get(pid, [])
    return total


def judge(results: dict, ratio: float | None, min_ratio: float | None) -> dict:
    """The target verdict. Met only if both the ratio of medians and the ratio of the fastest steps are <= TARGET:
    on a shared machine one system can lose whole steps to other jobs (TRL's 2-thread generation slowed 10x in
    some rounds, burning the CPU time with it), which moves the medians but not the fastest steps."""
    spread = {name: round(max(r["step_s_each"]) / min(r["step_s_each"]), 2) for name, r in results.items()}
    checks = {"median": None if ratio is None else ratio <= TARGET,
              "fastest_step": None if min_ratio is None else min_ratio <= TARGET}
    met = None if None in checks.values() else all(checks.values())
    if met is None:
        verdict = "not measured"
    elif met or not any(checks.values()):
        verdict = "met" if met else "not met"
    else:
        verdict = (f"not met: the median ratio ({ratio}) and the fastest-step ratio ({min_ratio}) disagree; "
                   "step times varied up to " + ", ".join(f"{n} {x}x" for n, x in spread.items()) + " (max/min)")
    return {"target_ratio": TARGET, "target_checks": checks, "target_met": met, "target_verdict": verdict,
            "step_s_spread_max_over_min": spread}


def median(values):
    return statistics.median(values) if values else None


def summarise(steps: list[dict]) -> dict:
    measured = steps[1:]  # step 0 is the warm-up
    keys = sorted({k for s in measured for k in s if isinstance(s[k], (int, float))})
    summary = {"steps_measured": len(measured), "step_s_each": [round(s["step_s"], 3) for s in measured],
               "step_s_min": round(min(s["step_s"] for s in measured), 4)}
    for key in keys:
        summary[key] = round(median([s[key] for s in measured if key in s]), 4)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="measured steps per system (after one warm-up)")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--prompts-per-step", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--modes", default="trl,trl_vllm_colocate", help="TRL modes: trl, trl_vllm_colocate")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the TRL process and our driver")
    parser.add_argument("--rollout-threads", type=int, default=0,
                        help="CPU threads of our vLLM rollout worker (rollout.threads; 0 = all cores: generation and "
                             "learning take turns)")
    parser.add_argument("--sft-steps", type=int, default=0, help="SFT-warm the checkpoint first (0 = fresh init)")
    parser.add_argument("--step-timeout", type=float, default=240.0)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    os.environ.update(OFFLINE_ENV)
    import yaml

    data = yaml.safe_load(CONFIG.read_text())["data"]
    rounds = args.steps + 1
    started_all = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="bench_grpo_vs_trl_"))
    from rl.api import model_init

    checkpoint = model_init("tiny", tmp / "policy", seed=0)
    policy_note = "fresh tiny init (seed 0); completions run to max_new_tokens"
    ctx = mp.get_context("spawn")
    if args.sft_steps:
        p = ctx.Process(target=run_sft, args=(str(checkpoint), str(tmp / "sft"), args.sft_steps, args.threads))
        p.start()
        p.join()
        checkpoint, policy_note = tmp / "sft", f"tiny init + {args.sft_steps} SFT steps"

    common = {"checkpoint": str(checkpoint), "group_size": args.group_size, "prompts": args.prompts_per_step,
              "max_new_tokens": args.max_new_tokens, "rounds": rounds, "threads": args.threads,
              "rollout_threads": args.rollout_threads,
              "seed": data["seed"], "max_prompt_tokens": data["max_prompt_tokens"], "ray_cpus": 2}
    systems = ["ours"] + [m.strip() for m in args.modes.split(",") if m.strip()]
    children, setup, not_run = {}, {}, {}
    # start one system at a time, so that each start-up is timed alone
    for name in systems:
        parent_conn, child_conn = ctx.Pipe()
        child_args = {**common, "mode": name, "out": str(tmp / name), "log": str(tmp / f"{name}.log")}
        target = run_ours if name == "ours" else run_trl
        process = ctx.Process(target=target, args=(child_conn, child_args), daemon=False)
        process.start()
        print(f"[{time.perf_counter() - started_all:6.1f}s] starting {name} (log {tmp / (name + '.log')})",
              flush=True)
        if not parent_conn.poll(args.step_timeout):
            process.terminate()
            not_run[name] = f"no answer within {args.step_timeout:.0f}s of start-up"
            continue
        message = parent_conn.recv()
        if not message.get("ready"):
            not_run[name] = message["error"]
            print(f"  {name} cannot run: {message['error'].splitlines()[-1][:300]}", flush=True)
            process.join(30)
            continue
        setup[name] = {k: round(v, 2) for k, v in message.items() if k != "ready" and v is not None}
        children[name] = (process, parent_conn)
        print(f"  {name} ready: {setup[name]}", flush=True)

    steps: dict[str, list[dict]] = {name: [] for name in children}
    for round_index in range(rounds):
        for name in list(children):
            process, conn = children[name]
            cpu_before = tree_cpu_seconds(process.pid)
            conn.send("step")
            if not conn.poll(args.step_timeout):
                not_run[name] = f"step {round_index} took longer than {args.step_timeout:.0f}s"
                process.terminate()
                del children[name]
                continue
            message = conn.recv()
            if "error" in message:
                not_run[name] = f"failed at step {round_index}: {message['error']}"
                del children[name]
                continue
            message["cpu_s"] = tree_cpu_seconds(process.pid) - cpu_before
            if name != "ours":
                message["time/learn_and_other_s"] = (message["step_s"] - message.get("time/generate_s", 0.0)
                                                     - message.get("time/reward_s", 0.0))
            steps[name].append(message)
            print(f"[{time.perf_counter() - started_all:6.1f}s] round {round_index} {name}: "
                  f"{message['step_s']:.2f}s/step, {message['throughput/rollout_tokens_per_s']:.0f} rollout tok/s",
                  flush=True)
    for name, (process, conn) in children.items():
        conn.send("stop")
    for name, (process, conn) in children.items():
        process.join(60)
        if process.is_alive():
            process.terminate()

    # same prompts per step on every side
    hashes = {name: [s["prompts_sha"] for s in runs] for name, runs in steps.items()}
    reference = hashes.get("ours", [])
    same_prompts = {name: h == reference[:len(h)] for name, h in hashes.items() if name != "ours" and h}

    results = {name: summarise(runs) for name, runs in steps.items() if len(runs) > 1}
    trl_modes = {name: r for name, r in results.items() if name != "ours"}
    best = min(trl_modes, key=lambda n: trl_modes[n]["step_s"]) if trl_modes else None
    ratio = cpu_ratio = min_ratio = None
    paired = []
    if best and "ours" in results:
        ratio = round(results["ours"]["step_s"] / results[best]["step_s"], 3)
        cpu_ratio = round(results["ours"]["cpu_s"] / results[best]["cpu_s"], 3)
        min_ratio = round(results["ours"]["step_s_min"] / results[best]["step_s_min"], 3)
        paired = [round(a["step_s"] / b["step_s"], 3) for a, b in zip(steps["ours"][1:], steps[best][1:])]
    ratios_each_mode = {n: round(results["ours"]["step_s"] / r["step_s"], 3) for n, r in trl_modes.items()
                        if "ours" in results}
    import torch
    import transformers
    import trl
    import vllm

    report = {
        "benchmark": "wall time per GRPO step and rollout tokens/s, ours (rl.trainer.GRPOTrainer: Ray + vLLM "
                     "rollouts + learner actor) vs TRL GRPOTrainer, same run, alternating",
        "command": "nice -n 10 " + " ".join([Path(sys.executable).name, "experiments/bench_grpo_vs_trl.py",
                                             *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                   f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, CPU only; "
                   "shared with other work, run under nice -n 10",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__,
                     "vllm": vllm.__version__, "python": platform.python_version()},
        "setup": {"trl_vllm_colocate_fix": TRL_SYNC_FIX, "policy": policy_note, "group_size": args.group_size, "prompts_per_step": args.prompts_per_step,
                  "completions_per_step": args.group_size * args.prompts_per_step,
                  "max_new_tokens": args.max_new_tokens, "rewards": "math_accuracy + 0.2 * format",
                  "loss": "dapo, beta 0, 1 iteration, 1 optimizer step per GRPO step, fp32",
                  "threads": f"TRL process torch {args.threads}; ours: driver {args.threads}, learner actor "
                             f"os.cpu_count(), vLLM rollout actor rollout.threads={args.rollout_threads} (0 = all cores)",
                  "warmup_steps_excluded": 1, "measured_steps": args.steps, "statistic": "median"},
        "load_average_1_5_15min": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        "startup_s": setup,
        "results": results,
        "ratio_ours_over_trl_best_step_s": ratio,
        "ratio_paired_per_round": paired,
        "ratio_paired_median": median(paired),
        "ratio_ours_over_trl_best_min_step_s": min_ratio,
        "cpu_s_ratio_ours_over_trl_best": cpu_ratio,
        "ratio_ours_over_each_trl_mode": ratios_each_mode,
        "trl_best_mode": best,
        **judge(results, ratio, min_ratio),
        "same_prompts_as_ours": same_prompts,
        "modes_not_run": not_run,
        "notes": [
            "step_s: wall time of one GRPO step (generation, rewards, advantages, learner update, weight sync for "
            "ours), median over the measured steps; start-up excluded and reported under startup_s.",
            "step_s_min / ratio of minima: the fastest measured step of each; other jobs can only add time, so "
            "the minimum is the figure least disturbed by them. The target counts as met only if both the ratio "
            "of medians and the ratio of minima are <= target (judge()).",
            "cpu_s: CPU seconds (user+system) the system's whole process tree used during one step, read from "
            "/proc; less sensitive than wall time to other jobs on the shared machine (not the target metric).",
            "rollout tokens/s = generated completion tokens / generation time of that step.",
            "TRL without vLLM skips the old-logprob forward (on-policy); ours always runs it.",
            "Ray's idle background processes stay up while TRL steps run (the systems alternate).",
            "RAY_worker_niceness=0: our Ray actors run at the same niceness as the TRL process (Ray's default "
            "would add 15).",
        ],
        "bench_seconds": round(time.perf_counter() - started_all, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"\n{'system':<20}{'step s':>8}{'cpu s':>7}{'gen s':>7}{'rew s':>7}{'learn s':>8}{'sync s':>7}"
          f"{'rollout tok/s':>14}{'len':>6}{'ours/x':>8}")
    nan = float("nan")
    for name, r in results.items():
        x = "" if name == "ours" else f"{results['ours']['step_s'] / r['step_s']:.2f}" if "ours" in results else ""
        learn = r.get("time/learn_s", r.get("time/learn_and_other_s", nan))
        print(f"{name:<20}{r['step_s']:>8.2f}{r['cpu_s']:>7.2f}{r.get('time/generate_s', nan):>7.2f}"
              f"{r.get('time/reward_s', nan):>7.2f}{learn:>8.2f}{r.get('time/weight_sync_s', nan):>7.2f}"
              f"{r['throughput/rollout_tokens_per_s']:>14.0f}{r.get('completion/length_mean', nan):>6.1f}{x:>8}")
    print("(TRL's learn s = step - generation - rewards: loss, backward, optimizer and the rest)")
    for name, reason in not_run.items():
        print(f"{name}: not run: {reason.splitlines()[-1][:200]}")
    print(f"ratio of fastest steps {min_ratio}, of CPU seconds {cpu_ratio}, paired per round {paired}")
    print(f"ratio ours/TRL best ({best}) per step: {ratio} (target <= {TARGET}: {report['target_verdict']}); "
          f"same prompts: {same_prompts}; logs in {tmp}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
