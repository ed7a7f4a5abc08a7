"""Concurrent searches with batched engine calls (search/batching.py) against searches run one after another, on the
search benchmark's set-up: the tiny_steps SFT policy in 2 Ray rollout workers, held-out problems of levels 2-3,
budgets of 8x greedy's tokens, the PRM/ORM + step checker where bench_search.py has trained them (else the checker).

    .venv/bin/python experiments/bench_search_batching.py            # about 10 minutes on 2 cores

Each method runs the same problems with the same seeds at every concurrency (1 = one search after another, as
before), in that order, on the same engines; reported: wall seconds per problem, the speed-up over concurrency 1
in the same run, and the share of problems whose answer is the same as concurrency 1's (the seeds are the same,
so only the engine's float arithmetic over a different batch can change a sample). Writes
experiments/results/search_batching.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "experiments"))

from bench_search import CACHE, METHODS, POLICY_RUN, log  # noqa: E402

RESULTS = REPO / "experiments" / "results" / "search_batching.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default="self_consistency,beam,mcts_puct,mcts_rollouts_vote")
    parser.add_argument("--concurrency", default="1,4,16,32", help="searches at once per engine; 1 first")
    parser.add_argument("--problems", type=int, default=32, help="held-out problems (levels 2 and 3, half each)")
    parser.add_argument("--multiple", type=float, default=8.0, help="budget in multiples of greedy's tokens")
    parser.add_argument("--greedy-tokens", type=float, default=41.3, help="greedy's mean tokens (search.json)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from model import load_tokenizer
    from problems import build_prompt, load_split
    from rl.rollout import open_generator

    policy = POLICY_RUN / "sft"
    if not (policy / "config.json").exists():
        raise SystemExit(f"{policy} is missing: run experiments/bench_search.py (its stage 1 trains it)")
    tokenizer = load_tokenizer(policy)
    problems = [p for level in (2, 3) for p in load_split("synthetic", "test", num_eval=args.problems // 2, seed=7,
                                                           levels=[level])]
    prompts = [build_prompt(p, tokenizer) for p in problems]
    seeds = list(range(len(prompts)))
    folders = {kind: CACHE / f"rm_{kind}" / "model" for kind in ("prm", "orm")}
    budget = round(args.multiple * args.greedy_tokens)
    levels = [int(c) for c in args.concurrency.split(",")]
    table = {}
    with open_generator(str(policy), 512, seed=0, workers=args.workers, search=True) as search:
        search(prompts[:2], seeds[:2], "greedy", 100, None, False, max_tokens=96)  # warm-up
        for name in args.methods.split(","):
            method, options, rm = METHODS[name]
            folder = folders.get(rm)
            reward_model = str(folder) if folder is not None and folder.exists() else None
            runs = {}
            for concurrency in levels:
                started = time.perf_counter()
                summaries = search(prompts, seeds, method, budget, reward_model, reward_model is not None,
                                   temperature=1.0, max_tokens=96, max_step_tokens=32, concurrency=concurrency,
                                   **options)
                seconds = time.perf_counter() - started
                runs[concurrency] = {"seconds_per_problem": seconds / len(prompts),
                                     "answers": [s["answer"] for s in summaries],
                                     "policy_tokens": sum(s["tokens"]["policy"] for s in summaries) / len(prompts)}
                log(f"{name} at concurrency {concurrency}: {seconds / len(prompts):.3f} s a problem")
            base = runs[levels[0]]
            table[name] = {"reward_model": reward_model, **{str(c): {
                "seconds_per_problem": r["seconds_per_problem"],
                "speedup": base["seconds_per_problem"] / r["seconds_per_problem"],
                "same_answer": sum(a == b for a, b in zip(r["answers"], base["answers"])) / len(prompts),
                "policy_tokens": r["policy_tokens"]} for c, r in runs.items()}}
    RESULTS.write_text(json.dumps({
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "date": datetime.date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                 text=True).stdout.strip(),
        "problems": len(prompts), "budget_tokens": budget, "workers": args.workers, "methods": table,
    }, indent=1) + "\n")
    log(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
