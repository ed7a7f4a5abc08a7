"""Sandbox throughput: the `code_execution` reward (programs run in the namespace sandbox through the grading pool)
against the loop a user would otherwise write, on the same programs, in one run.

    .venv/bin/python experiments/bench_sandbox.py [--programs 400] [--workers 2] [--repeats 3]

The user's loop: for each sample, one `subprocess.run([python, "-c", program + tests], timeout=5)` with its output
captured, the sample passing when it exits 0. It isolates nothing: the program sees the network, the files and the
processes of the user. Ours: `CodeExecution` over the whole list, each sample one sandboxed run (its own network,
PID, mount, IPC and UTS namespaces, an unprivileged uid, rlimits; see rewards/sandbox.py) made from a pool worker.

The programs are what a GRPO step on `tiny_code.yaml` grades: synthetic code completions (a plan in <think>, then
a ```python block), a third of them the reference solution, a third a wrong program (the expression changed), a
third a program that raises; plus, with `--humaneval`, HumanEval's canonical solutions with its `check` tests.
Both sides must agree on which samples pass (checked). The rate is samples per second, wall clock, after one
warm-up pass of each side; the spread is over `--repeats` alternating repeats.

Writes experiments/results/sandbox.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULT = REPO / "experiments" / "results" / "sandbox.json"


def workload(n: int, humaneval: bool, seed: int = 0) -> list[tuple[str, str, bool]]:
    """(completion, tests, should pass) triples: right, wrong and crashing synthetic programs, HumanEval's own."""
    from problems import load_humaneval, synthetic_code_problems

    rng = random.Random(seed)
    samples = []
    for i, problem in enumerate(synthetic_code_problems(n, seed=seed, levels=(1, 2, 3))):
        program = problem.answer
        if i % 3 == 1:  # a wrong answer: the right value inside a tuple
            program = program.replace("return ", "return (", 1).rstrip() + ",)\n"
        elif i % 3 == 2:  # a crash
            program = program.replace("return ", "return undefined_name + ", 1)
        completion = f"<think>\n1. plan\n</think>\n```python\n{program}```"
        samples.append((completion, problem.tests, i % 3 == 0))
    if humaneval:
        samples += [(f"```python\n{p.answer}```", p.tests, True) for p in load_humaneval()]
    rng.shuffle(samples)
    return samples


def users_loop(samples: list[tuple[str, str, bool]]) -> tuple[float, list[bool]]:
    from rewards.code import extract_program

    started = time.perf_counter()
    passed = []
    for completion, tests, _ in samples:
        try:
            run = subprocess.run([sys.executable, "-c", extract_program(completion) + "\n" + tests],
                                 capture_output=True, timeout=5)
            passed.append(run.returncode == 0)
        except subprocess.TimeoutExpired:
            passed.append(False)
    return time.perf_counter() - started, passed


def ours(samples: list[tuple[str, str, bool]]) -> tuple[float, list[bool]]:
    from rewards.code import code_execution

    started = time.perf_counter()
    scores = code_execution([c for c, _, _ in samples], tests=[t for _, t, _ in samples])
    return time.perf_counter() - started, [s == 1.0 for s in scores]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=400, help="synthetic code samples per repeat")
    parser.add_argument("--humaneval", action="store_true", help="add HumanEval's 164 canonical solutions")
    parser.add_argument("--workers", type=int, default=2, help="grading pool workers (the machine's cores)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each side, alternating")
    args = parser.parse_args()

    import torch

    import rewards
    from rewards.sandbox import isolation

    rewards.configure_default_pool(args.workers)
    samples = workload(args.programs, args.humaneval)
    expected = [should for _, _, should in samples]
    print(f"{len(samples)} samples ({sum(expected)} should pass); sandbox: {isolation()}", flush=True)
    ours(samples[:20]), users_loop(samples[:20])  # warm-up: pool workers started, caches filled

    rates = {"ours": [], "loop": []}
    for repeat in range(args.repeats):
        for name, side in (("ours", ours), ("loop", users_loop)):
            seconds, passed = side(samples)
            if passed != expected:
                wrong = sum(p != e for p, e in zip(passed, expected))
                raise SystemExit(f"{name} graded {wrong} of {len(samples)} samples differently from their truth")
            rates[name].append(len(samples) / seconds)
            print(f"repeat {repeat}: {name} {len(samples) / seconds:.1f} samples/s ({seconds:.1f} s)", flush=True)
    ratios = [o / loop for o, loop in zip(rates["ours"], rates["loop"])]
    result = {
        "what": "sandboxed code_execution through the grading pool vs a plain subprocess.run loop, samples/s",
        "command": "experiments/bench_sandbox.py " + " ".join(sys.argv[1:]),
        "date": datetime.date.today().isoformat(),
        "machine": {"cpus": __import__("os").cpu_count(), "processor": platform.processor() or platform.machine(),
                    "amx": bool(torch.cpu._is_amx_tile_supported())},
        "isolation": isolation(),
        "samples": len(samples), "should_pass": sum(expected), "pool_workers": args.workers,
        "ours_samples_per_s": [round(r, 2) for r in rates["ours"]],
        "loop_samples_per_s": [round(r, 2) for r in rates["loop"]],
        "ours_median": round(statistics.median(rates["ours"]), 2),
        "loop_median": round(statistics.median(rates["loop"]), 2),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "target": "ours >= 20 samples/s and ratio >= 1",
    }
    result["target_met"] = result["ours_median"] >= 20 and min(ratios) >= 1
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
