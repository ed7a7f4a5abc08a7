"""Benchmark the learner step in micro-batches (trainer.micro_batch_positions) against the whole mini-batch in one
forward and backward, on batches shaped like a recipe's: the code job's (experiments/tiny_code.yaml, the default)
or the math demo's (--config experiments/tiny_arith.yaml).

    python experiments/bench_micro_batches.py                      # about 12 minutes on 2 cores
    python experiments/bench_micro_batches.py --config experiments/tiny_arith.yaml      # about 4 minutes

The batch: the recipe's held-out prompts with their reference solutions as completions (the code job: 69-144
prompt tokens, 40-69 completion tokens, the lengths an SFT policy's completions have), advantages of both signs,
at several row counts (a step keeps 100-175 of the recipes' 256 completions). The policy: the tiny preset, freshly
initialised (the cost of a step does not depend on the weights), with the recipe's algorithm and layout settings.
Every (rows, budget) pair runs a warm-up step, then --repeats steps taken round-robin over the budgets so that slow
drift of the machine falls on all alike; the median is reported, with each budget's time as a ratio to the whole
mini-batch's in the same run. Writes experiments/results/micro_batches_<recipe>.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
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
from rl.config import load_config  # noqa: E402
from rl.learner import Learner  # noqa: E402
from rl.learner_settings import LearnerSettings  # noqa: E402
from rl.policy import forward_positions  # noqa: E402

CONFIG = REPO / "experiments" / "tiny_code.yaml"


def recipe_batch(problems: list, tokenizer, rows: int, seed: int = 0) -> LearnerBatch:
    """The first rows of the recipe's held-out problems as prompts + reference solutions, random advantages."""
    from rl.sft import sft_batch

    batch = sft_batch(problems[:rows], tokenizer)
    batch.advantages = torch.randn(len(batch), generator=torch.Generator().manual_seed(seed))
    batch.rollout_logprobs.fill_(-1.0)  # unused by the loss (the first pass's own logprobs are the old ones)
    return batch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[64, 128, 176, 256])
    parser.add_argument("--budgets", type=int, nargs="+", default=[0, 2048, 4096, 8192],
                        help="micro_batch_positions to compare; 0 (the whole mini-batch) is the reference")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads (the trainer's single learner uses every core)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the recipe whose batches and settings to use")
    parser.add_argument("--out", type=Path, help="default: experiments/results/micro_batches_<recipe>.json")
    args = parser.parse_args()
    args.config = args.config.resolve()
    out = args.out or REPO / "experiments" / "results" / f"micro_batches_{args.config.stem}.json"
    if 0 not in args.budgets:
        parser.error("--budgets must include 0, the whole mini-batch every other budget is compared with")
    from model import init_pretrained, load_tokenizer
    from problems import load_problems

    config = load_config(args.config, [])
    _, problems = load_problems(config.data)
    started = time.time()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        policy = str(Path(folder) / "policy")
        init_pretrained("tiny", policy, seed=0)
        tokenizer = load_tokenizer(policy)
        for rows in args.rows:
            batch = recipe_batch(problems, tokenizer, rows)
            settings = LearnerSettings.from_config(config.algorithm)
            learners = {budget: Learner(policy, settings, total_steps=args.repeats + 2,
                                        max_completion_length=config.rollout.max_new_tokens, threads=args.threads,
                                        pack=config.trainer.pack_sequences, micro_batch_positions=budget)
                        for budget in args.budgets}
            seconds: dict[int, list[float]] = {budget: [] for budget in args.budgets}
            for learner in learners.values():
                learner.train_step(batch)  # warm-up
            for _ in range(args.repeats):
                for budget, learner in learners.items():
                    tick = time.perf_counter()
                    learner.train_step(batch)
                    seconds[budget].append(time.perf_counter() - tick)
            whole = statistics.median(seconds[0])
            row = {"rows": len(batch), "tokens": int(batch.sequence_lengths().sum()),
                   "padded_positions": batch.input_ids.numel(), "budgets": {}}
            for budget in args.budgets:
                parts = batch.micro_batches(budget)
                median = statistics.median(seconds[budget])
                row["budgets"][str(budget)] = {
                    "micro_batches": len(parts),
                    "positions_run": sum(forward_positions(part, config.trainer.pack_sequences) for part in parts),
                    "seconds_median": round(median, 3), "seconds_all": [round(s, 3) for s in seconds[budget]],
                    "time_vs_whole": round(median / whole, 3)}
                print(f"rows {len(batch):4d}  budget {budget:6d}  parts {len(parts):3d}  {median:6.2f} s  "
                      f"x{median / whole:.2f}", flush=True)
            results.append(row)
            del learners
    report = {
        "benchmark": "learner step in micro-batches (trainer.micro_batch_positions) vs the whole mini-batch",
        "command": "python " + " ".join([str(Path(sys.argv[0]).relative_to(REPO) if Path(sys.argv[0]).is_absolute()
                                              else sys.argv[0])] + sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": {"arch": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())},
        "threads": args.threads, "repeats": args.repeats, "config": str(args.config.relative_to(REPO)),
        "batch": "the recipe's held-out prompts + reference solutions, random advantages",
        "results": results, "wall_s": round(time.time() - started, 1)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
