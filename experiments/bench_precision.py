"""bf16 against fp32 on this CPU: rollout tokens/s of each vLLM engine setting, learner step time with and without
bf16 autocast, and the learner-vs-engine logprob mismatch each combination costs.

    .venv/bin/python experiments/bench_precision.py [--checkpoint DIR] [--prompts 64] [--samples 8] [--tokens 64]

Engine settings measured: fp32 + CPU_MLA (the default), bf16 + CPU_MLA, and bf16 + AMX_MLA where the CPU has AMX
(`torch.cpu._is_amx_tile_supported()`); each engine runs in its own process (vLLM holds its process's torch
settings), on the same prompts, 3 timed repeats after a warm-up. The mismatch is measured on the fp32 and bf16
learners' logprobs of each engine's own samples (temperature 1): mean and max |diff| per token and the k3 KL.
The default stays fp32 unless bf16 rollouts pay here; where the mismatch is not negligible, the trainer's
`algorithm.rollout_correction_cap` (truncated importance sampling) corrects for it.

Writes experiments/results/precision.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULT = REPO / "experiments" / "results" / "precision.json"
REPEATS = 3


def engine_settings() -> list[tuple[str, str]]:
    import torch

    settings = [("fp32", "CPU_MLA"), ("bf16", "CPU_MLA")]
    if torch.cpu._is_amx_tile_supported():
        settings.append(("bf16", "AMX_MLA"))
    return settings


def prompts_of(n: int) -> list[list[int]]:
    from model import load_tokenizer
    from problems import build_prompt, split_synthetic

    tokenizer = load_tokenizer()
    _, problems = split_synthetic(0, n, seed=7, levels=[1])
    return [build_prompt(p, tokenizer) for p in problems]


def rollout_child(checkpoint: str, precision: str, backend: str, n_prompts: int, samples: int, tokens: int,
                  out: str) -> None:
    """In a process of its own: start the engine, time generation, save the samples."""
    from rl.rollout import RolloutWorker

    started = time.perf_counter()
    worker = RolloutWorker(checkpoint, max_model_len=256, seed=0, precision=precision, attention_backend=backend,
                           quiet=True)
    startup = time.perf_counter() - started
    prompts = prompts_of(n_prompts)
    worker.generate(prompts[:4], n=2, max_tokens=8)  # warm-up
    rates, result = [], []
    for repeat in range(REPEATS):
        started = time.perf_counter()
        result = worker.generate(prompts, n=samples, max_tokens=tokens, temperature=1.0, seed=repeat)
        seconds = time.perf_counter() - started
        rates.append(sum(len(s.completion_ids) for s in result) / seconds)
        # written after every repeat: a setting stopped at its time limit still reports what it measured
        Path(out).write_text(json.dumps({
            "startup_s": startup, "tokens_per_s": rates,
            "samples": [[s.prompt_ids, s.completion_ids, s.rollout_logprobs, s.truncated] for s in result]}))


def run_rollouts(checkpoint: str, args) -> dict:
    results = {}
    for precision, backend in engine_settings():
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            out = handle.name
        command = [sys.executable, __file__, "--child", precision, backend, "--checkpoint", checkpoint,
                   "--prompts", str(args.prompts), "--samples", str(args.samples), "--tokens", str(args.tokens),
                   "--out", out]
        print(f"rollouts: {precision} + {backend} ...", flush=True)
        name = f"{precision}+{backend}"
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=args.setting_timeout)
        except subprocess.TimeoutExpired:  # a setting this CPU runs very slowly: keep the repeats it finished
            measured = json.loads(Path(out).read_text()) if Path(out).stat().st_size else {}
            results[name] = measured | {"timed_out_after_s": args.setting_timeout}
            if not measured:
                results[name]["error"] = f"no timed repeat finished within {args.setting_timeout} s"
            print(f"  stopped at its {args.setting_timeout} s limit after {len(measured.get('tokens_per_s', []))} "
                  "timed repeats", flush=True)
            os.unlink(out)
            continue
        if done.returncode != 0:
            results[name] = {"error": done.stderr[-2000:]}
            print(f"  failed: {done.stderr[-500:]}")
            continue
        results[name] = json.loads(Path(out).read_text())
        os.unlink(out)
    return results


def learner_figures(checkpoint: str, rollouts: dict, threads: int, step_budget_s: float = 120.0) -> dict:
    """Per learner precision: step time on the fp32 engine's batch, and the mismatch against every engine."""
    import torch

    from model import load_tokenizer
    from rl.algos import k3_kl
    from rl.batch import LearnerBatch, RolloutBatch, Sample
    from rl.learner import Learner
    from rl.learner_settings import LearnerSettings

    pad = load_tokenizer().pad_token_id
    settings = LearnerSettings(loss_type="dapo", epsilon_low=0.2, epsilon_high=0.28, beta=0.0, num_iterations=1,
                               mini_batches=1, max_grad_norm=1.0, lr=1e-6, lr_schedule="constant", warmup_steps=0,
                               weight_decay=0.0, balance_bias_speed=0.0, importance_sampling_level="token",
                               kl_bias_correction=True, delta=None, rollout_correction_cap=None,
                               entropy_coeff=0.0, norm_lr_scale=1.0)

    def batch_of(samples: list) -> LearnerBatch:
        rows = [Sample(*row) for row in samples]
        advantages = torch.randn(len(rows), generator=torch.Generator().manual_seed(0))
        return LearnerBatch.from_rollouts(RolloutBatch(rows, torch.arange(len(rows)), advantages=advantages), pad, True)

    figures = {}
    for precision in ("fp32", "bf16"):
        learner = Learner(checkpoint, settings, total_steps=10, max_completion_length=64, threads=threads,
                          precision=precision)
        entry: dict = {"mismatch": {}}
        for name, result in rollouts.items():
            if "samples" not in result:
                continue
            batch = batch_of(result["samples"])
            logprobs = learner.logprobs(batch).float()
            mask = batch.completion_mask
            diff = (logprobs - batch.rollout_logprobs).abs() * mask
            tokens = mask.sum().item()
            entry["mismatch"][name] = {
                "abs_diff_mean": diff.sum().item() / tokens, "abs_diff_max": diff.max().item(),
                "kl_k3": (k3_kl(logprobs, batch.rollout_logprobs) * mask).sum().item() / tokens}
        batch = batch_of(rollouts["fp32+CPU_MLA"]["samples"])
        learner.train_step(batch)  # warm-up
        times, budget_started = [], time.perf_counter()
        for _ in range(REPEATS):
            started = time.perf_counter()
            learner.train_step(batch)
            times.append(time.perf_counter() - started)
            if time.perf_counter() - budget_started > step_budget_s:  # a very slow precision: fewer repeats
                break
        entry["step_s"] = times
        figures[precision] = entry
    return figures


def default_checkpoint() -> str:
    """A trained policy (the demo's warm start when it exists; else one made here): mismatch on random weights
    says little."""
    demo = REPO / "runs" / "demo" / "seed_0" / "sft"
    if (demo / "config.json").exists():
        return str(demo)
    from model import init_pretrained
    from problems import split_synthetic
    from rl.sft import sft_from_checkpoint

    folder = REPO / "runs" / "bench_precision"
    if not (folder / "sft" / "config.json").exists():
        init_pretrained("tiny", folder / "init")
        train, _ = split_synthetic(2000, 0, seed=0, levels=[1])
        sft_from_checkpoint(folder / "init", folder / "sft", train, steps=150, batch_size=32, lr=1e-3)
    return str(folder / "sft")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--setting-timeout", type=float, default=240.0,
                        help="seconds an engine setting may run (start-up, warm-up and repeats) before it is stopped")
    parser.add_argument("--child", nargs=2, metavar=("PRECISION", "BACKEND"))
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        rollout_child(args.checkpoint, *args.child, args.prompts, args.samples, args.tokens, args.out)
        return
    import torch

    checkpoint = args.checkpoint or default_checkpoint()
    rollouts = run_rollouts(checkpoint, args)
    learners = learner_figures(checkpoint, rollouts, args.threads)
    fp32_rate = statistics.median(rollouts["fp32+CPU_MLA"]["tokens_per_s"])
    engines = {name: ({"error": r["error"]} if "error" in r else
                      {"tokens_per_s_median": statistics.median(r["tokens_per_s"]), "tokens_per_s": r["tokens_per_s"],
                       "vs_fp32": statistics.median(r["tokens_per_s"]) / fp32_rate, "startup_s": r["startup_s"],
                       "timed_repeats": len(r["tokens_per_s"]),
                       **({"stopped_at_time_limit_s": r["timed_out_after_s"]} if "timed_out_after_s" in r else {})})
               for name, r in rollouts.items()}
    step = {p: statistics.median(learners[p]["step_s"]) for p in learners}
    best_bf16 = max((e["vs_fp32"] for n, e in engines.items() if n.startswith("bf16") and "vs_fp32" in e), default=0)
    result = {
        "benchmark": "bf16 vs fp32: rollout tokens/s per vLLM engine setting, learner step time, logprob mismatch",
        "command": "python experiments/bench_precision.py", "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only, "
                   f"{'with' if torch.cpu._is_amx_tile_supported() else 'without'} AMX",
        "checkpoint": checkpoint, "workload": f"{args.prompts} prompts x {args.samples} samples x up to {args.tokens} "
                                              f"tokens, temperature 1; median of {REPEATS} after a warm-up",
        "engines": engines,
        "learner": {p: {"step_s_median": step[p], "step_s": learners[p]["step_s"],
                        "mismatch_vs_engine": learners[p]["mismatch"]} for p in learners},
        "learner_bf16_vs_fp32_time": step["bf16"] / step["fp32"],
        "decision": ("bf16 rollouts pay here: consider rollout.precision=bf16 with algorithm.rollout_correction_cap"
                     if best_bf16 > 1.1 else
                     "bf16 does not pay on this CPU: the default stays fp32 (engine and learner)"),
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'engine':<16}{'tok/s':>10}{'vs fp32':>9}   mismatch vs fp32 learner (mean / max |dlogp|)")
    for name, engine in engines.items():
        if "error" in engine:
            print(f"{name:<16} failed")
            continue
        m = learners["fp32"]["mismatch"].get(name, {})
        print(f"{name:<16}{engine['tokens_per_s_median']:>10.0f}{engine['vs_fp32']:>9.2f}   "
              f"{m.get('abs_diff_mean', float('nan')):.2e} / {m.get('abs_diff_max', float('nan')):.2e}")
    print(f"learner step: fp32 {step['fp32']:.2f}s, bf16 autocast {step['bf16']:.2f}s "
          f"({result['learner_bf16_vs_fp32_time']:.2f}x)")
    print(result["decision"])
    print(f"wrote {RESULT}")


if __name__ == "__main__":
    main()
