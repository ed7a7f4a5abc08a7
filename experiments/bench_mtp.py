"""MTP speculative decoding on this CPU (rollout.speculative_tokens): does drafting with the policy's own MTP layer
pay, and does the MTP auxiliary loss keep the drafts accepted during GRPO?

    .venv/bin/python experiments/bench_mtp.py           # everything: about 65 minutes on 2 quiet cores (three
                                                        # 100-step math runs of 7-9 min, the code run 19 min)
    .venv/bin/python experiments/bench_mtp.py --tiny    # every part at a toy size: checks the script, measures nothing

1. GRPO runs (`grpo`): the math job (the demo's, experiments/tiny_arith.yaml) for --grpo-steps steps with one MTP
   layer (model.num_nextn_predict_layers=1, trained in the warm start with sft.mtp_weight 0.3) and drafts of
   --grpo-k tokens, with the MTP auxiliary on (algorithm.mtp_weight 0.3) and off (0): the acceptance the rollout
   workers logged each step (draft/*) and the step's wall time (time/*); and once more with the auxiliary on and
   no drafts (`math_mtp0.3_k0`): the same job's step time and held-out gain without drafting. The code job
   (experiments/tiny_code.yaml) runs once, auxiliary on, without drafts. Part 2's policies: each job's first run.
2. Engine (`engine`): per policy and k in 0, 1, 2, 3, one process each with its own engine (fp32, CPU_MLA, the
   rollout worker's settings), the same held-out prompts, --samples samples of up to the job's max_new_tokens
   tokens at temperature 1; a warm-up, then --repeats timed runs: tokens/s (best and all), the acceptance at each
   draft position and the mean accepted length (vLLM's counters), and where the engine's time went (the target's
   forward and LM head, the drafter's forward and LM head, the rest: scheduling, sampling, Python).
   `speedup` is tokens/s with drafts over tokens/s without, same run of this script. `k1_stock_cpu_mla`: one draft
   token on vLLM's CPU_MLA as shipped, which verifies drafts as a prefill over the whole cached context (ours,
   model/vllm_cpu_mla.py, verifies them as a decode). `engine_small_batch`: the math policy again with
   --small-prompts sequences at a time (one sample each), where per-step overhead weighs more than arithmetic.
3. Agreement (`pass@1_with_and_without_drafts`): the math policy's held-out pass@1 (synthetic level 1, 300
   problems x 8 samples, T=1) without drafts and with the most draft tokens: equal within their noise, or drafting
   changed what is sampled.
(Parts 1-3 are `--parts drafts`; each GRPO run, each policy's engine runs and part 3 are cached under --runs, so a
benchmark stopped between sessions resumes at the stage it was in. Each record says its machine.)
`--parts sft` (`sft_mtp_ablation`, about 12 minutes): what the MTP loss does to
the policy itself, the demo's warm start with one MTP layer trained with sft.mtp_weight 0.3 and with 0, seeds 0-2,
held-out pass@1 after it, the paired difference with its spread.

What it measured on 2 CPU cores (mtp.json, docs/results.md "Multi-token prediction"): 92-97% of first drafts
accepted, and drafts at 0.76-0.86x the tokens/s without them at 128 sequences (0.82-0.99x at 8): two cores are
compute-bound, so the target's forward over k + 1 tokens a sequence costs nearly k + 1 forwards of one, where a
GPU's costs about one. vLLM's CPU_MLA as shipped (k1_stock_cpu_mla) verified drafts as a prefill: 0.28-0.34x.

--math-policy / --code-policy give policies with MTP layers instead of training them in part 1.
Writes experiments/results/mtp.json (with --tiny: a temporary file, printed).
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
RESULT = REPO / "experiments" / "results" / "mtp.json"
JOBS = {"math": REPO / "experiments" / "tiny_arith.yaml", "code": REPO / "experiments" / "tiny_code.yaml"}
DRAFT_TOKENS = (1, 2, 3)
TARGETS = {"speedup_at_best_k": 1.5, "acceptance_pos1": 0.8}


def held_out_prompts(job: Path, n: int) -> tuple[list[list[int]], int]:
    """The job's first n held-out prompts (token ids) and its max_new_tokens."""
    from model import load_tokenizer
    from problems import build_prompt, load_problems
    from rl.config import load_config

    config = load_config(job)
    _, problems = load_problems(config.data)
    tokenizer = load_tokenizer()
    return [build_prompt(p, tokenizer) for p in problems[:n]], config.rollout.max_new_tokens


# ------------------------------------------------------------------ part 1: GRPO with drafts
def grpo_run(job: str, mtp_weight: float, draft_tokens: int, args) -> dict:
    """One GRPO run of the job with an MTP layer (and drafts of draft_tokens tokens); its per-step draft acceptance
    and timings."""
    from rl.api import train

    usual_k = {"math": args.grpo_k, "code": 0}[job]  # a run at other draft tokens than its job's usual says so
    out = Path(args.runs) / (f"{job}_mtp{mtp_weight:g}" + (f"_k{draft_tokens}" if draft_tokens != usual_k else ""))
    overrides = [f"trainer.output_dir={out}", "trainer.overwrite=true", "model.num_nextn_predict_layers=1",
                 "sft.mtp_weight=0.3", f"algorithm.mtp_weight={mtp_weight}",
                 f"rollout.speculative_tokens={draft_tokens}", f"trainer.steps={args.grpo_steps}",
                 f"trainer.eval_every={args.grpo_steps}"]
    if args.tiny:
        overrides += ["sft.steps=5", "rollout.prompts_per_step=2", "rollout.max_new_tokens=16", "data.num_eval=4",
                      "rollout.eval_samples=1"]
    stamp = out.parent / f"{out.name}.json"  # beside the run's folder, which train() overwrites
    if (cached := read_stamp(stamp, overrides)) is not None:
        print(f"GRPO: {job} job, algorithm.mtp_weight {mtp_weight:g}: cached ({stamp})", flush=True)
        return cached
    print(f"GRPO: {job} job, {args.grpo_steps} steps, algorithm.mtp_weight {mtp_weight:g}, "
          f"{draft_tokens} draft tokens ...", flush=True)
    started = time.perf_counter()
    summary = train(JOBS[job], overrides, log=lambda line: None)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "time/generate_s" in r]
    per_step = [{key: round(r[key], 4) for key in r if key.startswith(("draft/", "time/"))} | {"step": r.get("step")}
                for r in steps]
    tenth = max(1, len(steps) // 10)
    record = {"job": job, "mtp_weight": mtp_weight, "speculative_tokens": draft_tokens, "steps": len(steps),
            "minutes": round((time.perf_counter() - started) / 60, 2), "checkpoint": summary["checkpoint"],
            "acceptance_pos1_first_tenth": _mean(steps[:tenth], "draft/acceptance_pos1"),
            "acceptance_pos1_last_tenth": _mean(steps[-tenth:], "draft/acceptance_pos1"),
            "mean_accepted_length": _mean(steps, "draft/mean_accepted_length"),
            "step_s": _step_seconds(steps), "generate_s": _mean(steps, "time/generate_s"),
            "learn_s": _mean(steps, "time/learn_s"),
            "eval_after": {k: v for k, v in summary.get("eval_after", {}).items()
                           if k in ("eval/pass@1", "eval/pass@1_stderr")},
            "machine": machine(), "date": datetime.date.today().isoformat(), "per_step": per_step}
    write_stamp(stamp, overrides, record)
    return record


def read_stamp(stamp: Path, key) -> dict | None:
    """A cached stage's record if it was made with the settings `key`: --parts drafts runs for hours, so each GRPO
    run and each policy's engine runs are kept, and a stopped benchmark resumes at the stage it was in."""
    if stamp.is_file():
        record = json.loads(stamp.read_text())
        if record.pop("key", None) == key:
            return record
    return None


def write_stamp(stamp: Path, key, record: dict) -> None:
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(record | {"key": key}, indent=1))


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if key in r]
    return round(statistics.fmean(values), 4) if values else None


def _step_seconds(steps: list[dict]) -> float | None:
    """The mean step's seconds: the sum of its stages (generate, reward, learn, weight sync)."""
    stages = ("generate", "reward", "learn", "weight_sync")
    totals = [sum(r.get(f"time/{s}_s", 0.0) for s in stages) for r in steps]
    return round(statistics.fmean(totals), 4) if totals else None


# ------------------------------------------------------------------ part 2: the engine, with and without drafts
def record_engine_time(worker) -> None:
    """Runs in vLLM's worker: add up the seconds spent in the target's and the drafter's forward and LM head."""
    worker.bench_seconds = {"target_forward": 0.0, "target_lm_head": 0.0, "draft_forward": 0.0,
                            "draft_lm_head": 0.0}
    runner = worker.model_runner
    modules = [("target", runner.model)]
    if getattr(runner, "drafter", None) is not None:
        modules.append(("draft", runner.drafter.model))
    for name, module in modules:
        for method, label in (("forward", "forward"), ("compute_logits", "lm_head")):
            original = getattr(module, method)

            def timed(*a, _original=original, _key=f"{name}_{label}", **k):
                started = time.perf_counter()
                result = _original(*a, **k)
                worker.bench_seconds[_key] += time.perf_counter() - started
                return result

            setattr(module, method, timed)


def take_engine_time(worker) -> dict:
    seconds = dict(worker.bench_seconds)
    worker.bench_seconds = dict.fromkeys(seconds, 0.0)
    return seconds


def engine_child(checkpoint: str, job: str, k: int, args, out: str) -> None:
    """In a process of its own: one engine drafting k tokens (0 = none), timed on the job's held-out prompts. With
    --stock-cpu-mla, vLLM's own CPU_MLA backend, which verifies the drafts as a prefill over the whole context."""
    from model import vllm_cpu_mla
    from model.vllm_engine import acceptance
    from rl.rollout import RolloutWorker

    if args.stock_cpu_mla:
        vllm_cpu_mla.register = lambda: None  # make_engine then leaves vLLM's CPU_MLA as vLLM ships it
    prompts, max_tokens = held_out_prompts(JOBS[job], args.prompts)
    started = time.perf_counter()
    worker = RolloutWorker(checkpoint, max_model_len=1024, seed=0, quiet=True, speculative_tokens=k)
    startup = time.perf_counter() - started
    worker.generate(prompts[:4], n=2, max_tokens=8)  # warm-up
    worker.engine.collective_rpc(record_engine_time)
    result: dict = {"startup_s": round(startup, 1), "tokens_per_s": [], "repeats": []}
    for repeat in range(args.repeats):
        before = worker.draft_counters()
        worker.engine.collective_rpc(take_engine_time)
        started = time.perf_counter()
        samples = worker.generate(prompts, n=args.samples, max_tokens=max_tokens, temperature=1.0, seed=repeat)
        seconds = time.perf_counter() - started
        tokens = sum(len(s.completion_ids) for s in samples)
        parts = worker.engine.collective_rpc(take_engine_time)[0]
        parts["other"] = seconds - sum(parts.values())
        result["tokens_per_s"].append(round(tokens / seconds, 1))
        result["repeats"].append({"seconds": round(seconds, 3), "tokens": tokens,
                                  "seconds_by_part": {key: round(v, 3) for key, v in parts.items()},
                                  **{key: round(v, 4) for key, v in acceptance(before, worker.draft_counters()).items()}})
        Path(out).write_text(json.dumps(result))  # after every repeat: a run stopped at its limit keeps its figures


def engine_settings(draft_tokens: tuple[int, ...]) -> list[tuple[str, int, bool]]:
    """(name in the JSON, draft tokens, vLLM's stock CPU_MLA) of each engine run: no drafts, each k, and one draft
    token on the stock backend, whose row shows what verifying drafts as a decode (model/vllm_cpu_mla.py) changed."""
    return [("k0", 0, False), *((f"k{k}", k, False) for k in draft_tokens), ("k1_stock_cpu_mla", 1, True)]


def engine_runs(policies: dict[str, str], args, prompts: int, samples: int, repeats: int, label: str = "") -> dict:
    """Per policy, one engine run per setting (engine_settings) on `prompts` held-out prompts x `samples` samples
    (that many sequences decode together), `repeats` timed runs each."""
    results: dict = {}
    settings = engine_settings(args.draft_tokens)
    for job, checkpoint in policies.items():
        # one policy's settings run together, in one invocation: its speedups are ratios on one machine
        stamp = Path(args.runs) / f"engine{label}_{job}.json"
        key = [str(Path(checkpoint).resolve()), (Path(checkpoint) / "model.safetensors").stat().st_mtime_ns,
               prompts, samples, repeats, [name for name, _, _ in settings]]
        if (cached := read_stamp(stamp, key)) is not None:
            print(f"engine: {job} policy{label}: cached ({stamp})", flush=True)
            results[job] = cached
            continue
        results[job] = {"checkpoint": checkpoint, "prompts": prompts, "samples": samples, "repeats": repeats,
                        "machine": machine(), "date": datetime.date.today().isoformat()}
        for name, k, stock in settings:
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
                out = handle.name
            command = [sys.executable, __file__, "--child", checkpoint, job, str(k), "--out", out,
                       "--prompts", str(prompts), "--samples", str(samples), "--repeats", str(repeats),
                       *(["--stock-cpu-mla"] if stock else [])]
            print(f"engine: {job} policy{label}, {name} ...", flush=True)
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=args.setting_timeout)
                error = None if done.returncode == 0 else done.stderr[-2000:]
            except subprocess.TimeoutExpired:
                error = f"stopped at its {args.setting_timeout} s limit"
            measured = json.loads(Path(out).read_text()) if Path(out).stat().st_size else {}
            os.unlink(out)
            results[job][name] = summarise_engine(measured) | ({"error": error} if error else {})
        base = results[job]["k0"].get("best_tokens_per_s")
        for name, _, _ in settings[1:]:
            entry = results[job][name]
            if base and entry.get("best_tokens_per_s"):
                entry["speedup"] = round(entry["best_tokens_per_s"] / base, 3)
        if not any("error" in results[job][name] for name, _, _ in settings):  # a failed one runs again
            write_stamp(stamp, key, results[job])
    return results


def summarise_engine(measured: dict) -> dict:
    repeats = measured.get("repeats", [])
    if not repeats:
        return dict(measured)
    best = max(range(len(repeats)), key=lambda i: measured["tokens_per_s"][i])
    figures = {key: value for key, value in repeats[best].items() if key.startswith("acceptance")
               or key in ("mean_accepted_length", "seconds_by_part")}
    return {"startup_s": measured["startup_s"], "tokens_per_s": measured["tokens_per_s"],
            "best_tokens_per_s": measured["tokens_per_s"][best],
            "median_tokens_per_s": round(statistics.median(measured["tokens_per_s"]), 1)} | figures


# ------------------------------------------------------------------ part 3: the same policy's pass@1 with and without drafts
def pass_at_1_with_and_without_drafts(checkpoint: str, k: int, args) -> dict:
    """The math policy's held-out pass@1 (the demo's set: synthetic level 1, T=1) without drafts and with k: drafts
    change which random numbers a sample draws, not its distribution, so the two agree within their noise."""
    from rl.api import evaluate_checkpoint

    stamp = Path(args.runs) / "agreement.json"
    key = [str(Path(checkpoint).resolve()), (Path(checkpoint) / "model.safetensors").stat().st_mtime_ns, k,
           args.eval_problems, args.eval_samples]
    if (cached := read_stamp(stamp, key)) is not None:
        print(f"pass@1 with and without drafts: cached ({stamp})", flush=True)
        return cached
    print(f"pass@1 with and without {k} draft tokens ...", flush=True)
    figures = {}
    for draft_tokens in (0, k):
        result = evaluate_checkpoint(checkpoint, "synthetic", n=args.eval_samples, limit=args.eval_problems,
                                     max_tokens=64, temperature=1.0, top_p=1.0, seed=0, levels=(1,),
                                     speculative_tokens=draft_tokens, log=lambda line: None)["synthetic"].scores
        figures[f"k{draft_tokens}"] = {"pass@1": round(result["pass@1"], 4),
                                       "pass@1_stderr": round(result["pass@1_stderr"], 4),
                                       "seconds": round(result["seconds"], 1)}
    without, drafted = figures["k0"], figures[f"k{k}"]
    noise = (without["pass@1_stderr"] ** 2 + drafted["pass@1_stderr"] ** 2) ** 0.5
    difference = drafted["pass@1"] - without["pass@1"]
    record = figures | {"difference": round(difference, 4), "difference_stderr": round(noise, 4),
                        "within_2_stderr": abs(difference) <= 2 * noise}
    write_stamp(stamp, key, record)
    return record


def sft_ablation(seeds: list[int], weight: float, args) -> dict:
    """What the MTP loss does to the policy itself (V3's ablation, small): the demo's warm start (tiny_arith.yaml's
    sft section) of the tiny policy with one MTP layer, trained with sft.mtp_weight `weight` and with 0 (the layer
    then untrained), the same init, problems and steps per seed; held-out pass@1 after it (the job's evaluation
    before GRPO: 300 problems x 8 samples, T=1). One GRPO step follows, because a run evaluates before its first."""
    from rl.api import train

    runs: dict[str, list[dict]] = {"without": [], "with": []}
    for seed in seeds:
        for arm, mtp_weight in (("without", 0.0), ("with", weight)):
            out = Path(args.runs) / f"sft_mtp{mtp_weight:g}_seed{seed}"
            overrides = [f"trainer.output_dir={out}", "trainer.overwrite=true", "model.num_nextn_predict_layers=1",
                         f"sft.mtp_weight={mtp_weight}", f"model.seed={seed}", f"trainer.seed={seed}",
                         "trainer.steps=1", "trainer.eval_every=1", "trainer.save_every=1", "logging.progress=false",
                         "logging.tensorboard=false"]
            if args.tiny:
                overrides += ["sft.steps=5", "rollout.prompts_per_step=2", "rollout.max_new_tokens=16",
                              "data.num_eval=4", "rollout.eval_samples=1"]
            print(f"SFT: seed {seed}, sft.mtp_weight {mtp_weight:g} ...", flush=True)
            started = time.perf_counter()
            train(JOBS["math"], overrides, log=lambda line: None)
            rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
            before_grpo = next(r for r in rows if r["step"] == 0 and "eval/pass@1" in r)
            runs[arm].append({"seed": seed, "sft_mtp_weight": mtp_weight,
                              "pass@1": round(before_grpo["eval/pass@1"], 4),
                              "pass@1_stderr": round(before_grpo["eval/pass@1_stderr"], 4),
                              "minutes": round((time.perf_counter() - started) / 60, 2)})
    differences = [round(b["pass@1"] - a["pass@1"], 4) for a, b in zip(runs["without"], runs["with"])]
    return {"job": str(JOBS["math"].relative_to(REPO)), "sft_mtp_weight": weight, "runs": runs,
            "with_minus_without": {"per_seed": differences, "mean": round(statistics.mean(differences), 4),
                                   "std": round(statistics.stdev(differences), 4) if len(differences) > 1 else None}}


# ------------------------------------------------------------------ the summary
def best_k(results: dict) -> tuple[int, float] | None:
    """The draft tokens with the highest speedup over no drafts in one policy's engine runs, and that speedup."""
    speedups = {k: results[f"k{k}"].get("speedup") for k in DRAFT_TOKENS if f"k{k}" in results}
    speedups = {k: s for k, s in speedups.items() if s is not None}
    return max(speedups.items(), key=lambda item: item[1]) if speedups else None


def summarise(engine: dict, engine_small: dict, grpo: list[dict], agreement: dict | None) -> dict:
    summary: dict = {"targets_met": {}}
    if agreement:
        summary["targets_met"]["math: held-out pass@1 with drafts within 2 standard errors of without"] = (
            agreement["within_2_stderr"])
    for job, results in engine.items():
        if (found := best_k(results)) is None:
            continue
        best, speedup = found
        first = results[f"k{best}"].get("acceptance_pos1")
        summary[job] = {"best_k": best, "speedup_at_best_k": speedup, "acceptance_pos1_at_best_k": first,
                        "speedup_k1_stock_cpu_mla": results.get("k1_stock_cpu_mla", {}).get("speedup")}
        if (small := engine_small.get(job)) and (found_small := best_k(small)):
            summary[job] |= {"small_batch_best_k": found_small[0], "small_batch_speedup_at_best_k": found_small[1]}
        summary["targets_met"][f"{job}: speedup >= {TARGETS['speedup_at_best_k']}x at the best k"] = (
            speedup >= TARGETS["speedup_at_best_k"])
        summary["targets_met"][f"{job}: acceptance of the first draft token >= {TARGETS['acceptance_pos1']:.0%}"] = (
            first is not None and first >= TARGETS["acceptance_pos1"])
    math = {run_name(r): r for r in grpo if r["job"] == "math"}
    if math:
        summary["grpo_math"] = {figure: {name: run[figure] for name, run in math.items()} for figure in
                                ("acceptance_pos1_first_tenth", "acceptance_pos1_last_tenth", "step_s",
                                 "generate_s", "learn_s", "minutes", "eval_after")}
    drafting, plain = math.get("mtp_aux_on"), math.get("mtp_aux_on_no_drafts")
    if drafting and plain:  # the demo's job with and without drafts, the MTP auxiliary on in both
        summary["targets_met"]["math GRPO: fewer minutes with drafts than without"] = (
            drafting["minutes"] < plain["minutes"])
        after = [run["eval_after"] for run in (drafting, plain)]
        noise = (after[0]["eval/pass@1_stderr"] ** 2 + after[1]["eval/pass@1_stderr"] ** 2) ** 0.5
        summary["targets_met"]["math GRPO: held-out pass@1 after it with drafts within 2 standard errors of "
                               "without"] = abs(after[0]["eval/pass@1"] - after[1]["eval/pass@1"]) <= 2 * noise
    return summary


def run_name(run: dict) -> str:
    """A GRPO run's name in the summary: mtp_aux_on / mtp_aux_off, and _no_drafts without drafts."""
    return f"mtp_aux_{'on' if run['mtp_weight'] > 0 else 'off'}" + ("" if run["speculative_tokens"] else "_no_drafts")


def machine() -> str:
    from model.vllm_engine import cpu_has_amx

    return (f"{platform.machine()}, {os.cpu_count()} cores, CPU only "
            f"({'with' if cpu_has_amx() else 'without'} AMX)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=3, metavar=("CHECKPOINT", "JOB", "K"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--math-policy", help="a math policy with MTP layers (default: trained in part 1)")
    parser.add_argument("--code-policy", help="a code policy with MTP layers (default: trained in part 1)")
    parser.add_argument("--runs", help="folder of the cached stages: part 1's GRPO runs, part 2's engine runs, part "
                        "3 (default: runs/bench_mtp; --tiny: a new temporary folder)")
    parser.add_argument("--grpo-steps", type=int, default=100)
    parser.add_argument("--grpo-k", type=int, default=1, help="draft tokens during the math GRPO runs")
    parser.add_argument("--skip-grpo-off", action="store_true", help="leave out the math run drafting without the "
                        "auxiliary")
    parser.add_argument("--prompts", type=int, default=32, help="held-out prompts per engine run")
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt")
    parser.add_argument("--repeats", type=int, default=6, help="timed repeats per engine run (under a "
                        "second each)")
    parser.add_argument("--small-prompts", type=int, default=8, help="held-out prompts (one sample each) of the "
                        "small-batch engine runs")
    parser.add_argument("--small-repeats", type=int, default=30, help="timed repeats per small-batch engine run")
    parser.add_argument("--stock-cpu-mla", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--eval-problems", type=int, default=300, help="held-out problems of part 3")
    parser.add_argument("--eval-samples", type=int, default=8, help="samples per problem in part 3")
    parser.add_argument("--setting-timeout", type=int, default=1200, help="seconds allowed to one engine run (the "
                        "code policy drafting: minutes a repeat)")
    parser.add_argument("--parts", default="drafts,sft", help="drafts (parts 1-3), sft (the MTP loss's effect on "
                        "the warm-started policy, 3 seeds, ~12 minutes); each rewrites its own section of mtp.json")
    parser.add_argument("--tiny", action="store_true", help="a smoke run of every part at a tiny size")
    args = parser.parse_args()
    args.draft_tokens = DRAFT_TOKENS
    if args.child:
        checkpoint, job, k = args.child
        engine_child(checkpoint, job, int(k), args, args.out)
        return
    if args.tiny:
        args.grpo_steps, args.prompts, args.samples, args.repeats, args.draft_tokens = 2, 4, 2, 1, (1,)
        args.small_prompts, args.small_repeats = 2, 1
        args.eval_problems, args.eval_samples = 8, 2
        args.runs = args.runs or tempfile.mkdtemp(prefix="bench_mtp_")
    args.runs = args.runs or "runs/bench_mtp"
    parts = args.parts.split(",")
    path = Path(tempfile.mkdtemp()) / "mtp.json" if args.tiny else RESULT
    result = json.loads(path.read_text()) if path.exists() else {}
    if "sft" in parts:
        result["sft_mtp_ablation"] = sft_ablation([0] if args.tiny else [0, 1, 2], 0.3, args) | {
            "date": datetime.date.today().isoformat(), "machine": machine()}
    if "drafts" in parts:
        result |= draft_parts(args)
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({key: result.get(key) for key in ("summary", "sft_mtp_ablation")}, indent=1))
    print(f"written: {path}")


def draft_parts(args) -> dict:
    """Parts 1-3: the GRPO runs, the engine runs and the agreement of pass@1 with and without drafts."""
    given = {"math": args.math_policy, "code": args.code_policy}
    policies = {job: policy for job, policy in given.items() if policy}
    # math: drafting with the MTP auxiliary on and off (drift), and the same job without drafts (step time, gain);
    # the code job's run only makes its policy, without drafts, which cost generation time on CPU (part 2)
    grpo = []
    for job, weight, draft_tokens in (("math", 0.3, args.grpo_k), ("math", 0.0, args.grpo_k), ("math", 0.3, 0),
                                      ("code", 0.3, 0)):
        if given[job] or (weight == 0 and args.skip_grpo_off):  # a policy given, or the run left out
            continue
        run = grpo_run(job, weight, draft_tokens, args)
        grpo.append(run)
        if weight > 0:
            policies.setdefault(job, run["checkpoint"])  # part 2's policy: the job's first run with the auxiliary
    engine = engine_runs(policies, args, args.prompts, args.samples, args.repeats)
    # few sequences at a time (a user's request, a search's expansion): where per-step overhead weighs most
    engine_small = engine_runs({"math": policies["math"]}, args, args.small_prompts, 1, args.small_repeats,
                               label="_small_batch")
    agreement = pass_at_1_with_and_without_drafts(policies["math"], max(args.draft_tokens), args)
    return {"date": datetime.date.today().isoformat(), "machine": machine(),
              "settings": {"engine": "fp32, CPU_MLA verifying drafts as a decode (model/vllm_cpu_mla.py), "
                                     "enforce_eager, one engine (RolloutWorker's settings)",
                           "prompts": args.prompts, "samples": args.samples, "repeats": args.repeats,
                           "temperature": 1.0, "grpo_steps": args.grpo_steps, "grpo_k": args.grpo_k,
                           "draft_method": "vLLM mtp: greedy drafts from the first MTP layer, standard rejection "
                                           "sampling"},
              "summary": summarise(engine, engine_small, grpo, agreement), "engine": engine,
              "engine_small_batch": engine_small, "pass@1_with_and_without_drafts": agreement,
              "grpo": [{k: v for k, v in run.items() if k != "per_step"} for run in grpo],
              # keyed as the summary names the runs: two math runs share their MTP weight (with and without drafts)
              "grpo_per_step": {f"{run['job']}_{run_name(run)}": run["per_step"] for run in grpo}}


if __name__ == "__main__":
    main()
