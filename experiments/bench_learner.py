"""Benchmark the GRPO learner step: our DeepSeek-V3 against transformers' DeepseekV3ForCausalLM running the
same Learner code (rl/learner.py: forward, GRPO loss, backward, clipping, AdamW) on the same weights and batch,
in fp32, in bf16 autocast and in fp8 (DeepSeek-V3's FP8 GEMMs, model/fp8.py: ours only), on one device.

    python experiments/bench_learner.py --preset small --device cuda     # a GPU machine
    python experiments/bench_learner.py --preset small --device cuda --precisions bf16,fp8 --implementations ours
    python experiments/bench_learner.py --preset tiny --device cpu --batch 8 --completion-len 128

Per configuration: seconds per step (median over --steps after one warm-up step), learner tokens/s and, on a
GPU, peak allocated memory. Configurations run one after another in this process, alternating
implementations; on a GPU the allocator is emptied and the peak reset between them. Writes
experiments/results/learner_<device>_<preset>.json, with the device and torch version.

What it imports: torch, numpy, PyYAML and safetensors (rl.learner, rl.config), transformers only for
--implementations transformers; no Ray and no vLLM.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rl.batch import LearnerBatch  # noqa: E402
from rl.config import AlgorithmConfig  # noqa: E402
from rl.learner import Learner  # noqa: E402
from rl.learner_settings import LearnerSettings  # noqa: E402


def random_batch(batch: int, prompt_len: int, completion_len: int, vocab: int, seed: int = 0) -> LearnerBatch:
    """Prompts and completions of fixed lengths, advantages of both signs (rollout logprobs unused: 0)."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(3, vocab, (batch, prompt_len + completion_len), generator=generator)
    advantages = torch.randn(batch, generator=generator)
    return LearnerBatch(input_ids=input_ids, completion_start=torch.full((batch,), prompt_len),
                        completion_mask=torch.ones(batch, completion_len),
                        completion_ids=input_ids[:, prompt_len:].clone(),
                        rollout_logprobs=torch.zeros(batch, completion_len), advantages=advantages,
                        is_sample=torch.ones(batch, dtype=torch.bool),
                        completion_lengths=torch.full((batch,), completion_len))


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(checkpoint: str, implementation: str, precision: str, device: str, batch: LearnerBatch,
            steps: int, profile: bool = False) -> dict:
    if device.startswith("cuda"):
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    learner = Learner(checkpoint, LearnerSettings.from_config(AlgorithmConfig(lr=1e-6)), total_steps=steps + 1,
                      max_completion_length=batch.completion_ids.size(1), threads=torch.get_num_threads(),
                      device=device, precision=precision, implementation=implementation)
    times = []
    for step in range(steps + 1):
        synchronize(device)
        started = time.perf_counter()
        metrics = learner.train_step(batch)
        synchronize(device)
        if step:  # the first step is the warm-up (allocator, kernels' autotuning)
            times.append(time.perf_counter() - started)
    if profile:  # one more step under the profiler: the operators that took the time
        from torch.profiler import ProfilerActivity, profile as profiler

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
        with profiler(activities=activities) as prof:
            learner.train_step(batch)
            synchronize(device)
        sort = "self_cuda_time_total" if device.startswith("cuda") else "self_cpu_time_total"
        print(f"--- {implementation} {precision}\n" + prof.key_averages().table(sort_by=sort, row_limit=15))
    seconds = statistics.median(times)
    result = {"implementation": implementation, "precision": precision, "seconds_per_step": round(seconds, 4),
              "learner_tokens_per_s": round(batch.input_ids.numel() / seconds), "loss": metrics["loss"]}
    if device.startswith("cuda"):
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del learner
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="model preset (model/config.py)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16, help="completions per step")
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--completion-len", type=int, default=512)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration (after a warm-up)")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32, bf16, fp8 (fp8: ours only)")
    parser.add_argument("--implementations", default="ours,transformers",
                        help="ours, transformers (transformers' class needs the transformers package)")
    parser.add_argument("--profile", action="store_true", help="print each configuration's top operators")
    args = parser.parse_args()

    from model import ModelArgs
    from model.checkpoint import init_pretrained

    implementations = {"ours": "auto", "transformers": "transformers"}
    names = args.implementations.split(",")
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "policy"
        init_pretrained(args.preset, checkpoint, seed=0)
        vocab = ModelArgs.load(checkpoint / "config.json").vocab_size
        batch = random_batch(args.batch, args.prompt_len, args.completion_len, vocab)
        runs = []
        for precision in args.precisions.split(","):
            for name in names:
                if precision == "fp8" and name != "ours":
                    continue  # FP8 linear layers are swapped into our class only
                run = measure(str(checkpoint), implementations[name], precision, args.device, batch, args.steps,
                              args.profile)
                run["implementation"] = name
                print(json.dumps(run), flush=True)
                runs.append(run)

    def run_of(precision, name):
        return next((r for r in runs if r["precision"] == precision and r["implementation"] == name), None)

    ratios = {}
    for precision in args.precisions.split(","):
        ours, peer = run_of(precision, "ours"), run_of(precision, "transformers")
        if ours and peer:
            ratios[f"time_{precision}"] = round(ours["seconds_per_step"] / peer["seconds_per_step"], 3)
            if "peak_memory_gib" in ours:
                ratios[f"memory_{precision}"] = round(ours["peak_memory_gib"] / peer["peak_memory_gib"], 3)
    if run_of("fp8", "ours") and run_of("bf16", "ours"):  # V3's FP8 against bf16, same class, same run
        ratios["fp8_over_bf16_tokens_per_s"] = round(run_of("fp8", "ours")["learner_tokens_per_s"]
                                                     / run_of("bf16", "ours")["learner_tokens_per_s"], 3)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    result = {"what": "GRPO learner step (rl.learner.Learner.train_step: dapo loss, AdamW, grad clipping), ours vs "
                      "transformers' DeepseekV3ForCausalLM on the same weights and batch; fp8 = DeepSeek-V3's FP8 "
                      "GEMMs (model/fp8.py), ours only",
              "date": datetime.date.today().isoformat(), "device": device_name, "torch": torch.__version__,
              "preset": args.preset, "batch": args.batch, "prompt_len": args.prompt_len,
              "completion_len": args.completion_len, "steps": args.steps, "runs": runs,
              "ratio_ours_over_transformers": ratios,
              "command": "python experiments/bench_learner.py " + " ".join(sys.argv[1:])}
    out = REPO / "experiments" / "results" / f"learner_{args.device.split(':')[0]}_{args.preset}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(ratios), "->", out)


if __name__ == "__main__":
    main()
