"""Evaluation throughput: `reasonrl eval` (rl.api.evaluate_checkpoint) against the loop a user would otherwise write
(`vllm.LLM.generate`, then math-verify's `verify(parse(gold), parse(output))` per output, in one process), on the
same model, benchmark problems, sampling settings and engine settings, in one run.

    .venv/bin/python experiments/bench_eval.py [--checkpoint DIR] [--bench synthetic] [--limit 200] [-n 8]

Both sides start their own engine (start-up is reported apart and excluded from the rate); the rate is graded
samples per second from the first prompt sent to the last verdict. Ours also writes results.json and samples.jsonl
(included in its time). Accuracy of both is reported, to show they graded the same outputs comparably (they sample
with different seeds, so their pass@1 differ by sampling noise, and the graders differ where math-verify misses).

Writes experiments/results/eval.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULT = REPO / "experiments" / "results" / "eval.json"


def ours(checkpoint: str, bench: str, limit: int, n: int, max_tokens: int) -> dict:
    from rl.api import evaluate_checkpoint

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = evaluate_checkpoint(checkpoint, bench, n=n, limit=limit, max_tokens=max_tokens, temperature=1.0,
                                     top_p=1.0, seed=0, out=out, log=lambda *_: None)[bench]
        total = time.perf_counter() - started
    # evaluate's own clock starts at the first prompt; the rest of `total` is the engine start-up and data loading
    seconds = result.scores["seconds"]
    return {"seconds": seconds, "startup_s": total - seconds, "samples": result.scores["problems"] * n,
            "samples_per_s": result.scores["problems"] * n / seconds, "pass@1": result.scores["pass@1"]}


def users_loop(checkpoint: str, bench: str, limit: int, n: int, max_tokens: int) -> dict:
    """What a user writes without us: one vLLM engine (our engine settings, so only the loop differs), generate,
    then math-verify per output in the main process."""
    from math_verify import parse, verify
    from vllm import SamplingParams

    from model import decode_completion, load_tokenizer
    from model.vllm_engine import make_engine
    from rl.api import load_benchmarks
    from problems import build_prompt

    os.environ["VLLM_LOGGING_LEVEL"] = "WARNING"
    started = time.perf_counter()
    problems = load_benchmarks(bench, limit=limit)[bench]
    tokenizer = load_tokenizer(checkpoint)
    prompts = [build_prompt(p, tokenizer) for p in problems]
    engine = make_engine(checkpoint, max_model_len=max(map(len, prompts)) + max_tokens)
    startup = time.perf_counter() - started
    started = time.perf_counter()
    outputs = engine.generate([{"prompt_token_ids": p} for p in prompts],
                              SamplingParams(n=n, max_tokens=max_tokens, temperature=1.0, top_p=1.0, seed=0),
                              use_tqdm=False)
    correct = 0
    for problem, output in zip(problems, outputs):
        gold = parse(f"${problem.answer}$")
        for sample in output.outputs:
            correct += bool(verify(gold, parse(decode_completion(tokenizer, sample.token_ids))))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "startup_s": startup, "samples": len(problems) * n,
            "samples_per_s": len(problems) * n / seconds, "pass@1": correct / (len(problems) * n)}


def default_checkpoint() -> str:
    """The demo's last policy when there is one (its outputs are answers, not noise), else the fresh tiny preset."""
    demo = REPO / "runs" / "demo" / "seed_0" / "checkpoints"
    done = sorted(demo.glob("step_*"), key=lambda p: int(p.name.split("_")[1])) if demo.exists() else []
    if done:
        return str(done[-1])
    from model import init_pretrained

    folder = REPO / "runs" / "bench_eval" / "init"
    if not (folder / "config.json").exists():
        init_pretrained("tiny", folder)
    return str(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint")
    parser.add_argument("--bench", default="synthetic")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--side", choices=["ours", "users_loop"], help=argparse.SUPPRESS)  # child process
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    checkpoint = args.checkpoint or default_checkpoint()
    if args.side:  # each side in a process of its own: vLLM holds its process's torch settings
        side = ours if args.side == "ours" else users_loop
        Path(args.out).write_text(json.dumps(side(checkpoint, args.bench, args.limit, args.n, args.max_tokens)))
        return
    sides = {}
    for name in ("users_loop", "ours"):
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            out = handle.name
        subprocess.run([sys.executable, __file__, "--side", name, "--checkpoint", checkpoint, "--bench", args.bench,
                        "--limit", str(args.limit), "-n", str(args.n), "--max-tokens", str(args.max_tokens),
                        "--out", out], check=True)
        sides[name] = json.loads(Path(out).read_text())
        os.unlink(out)
        print(f"{name}: {sides[name]['samples_per_s']:.1f} graded samples/s", flush=True)
    result = {
        "benchmark": "evaluation throughput: graded samples per second, reasonrl eval vs vLLM generate + math-verify",
        "command": "python experiments/bench_eval.py " + " ".join(sys.argv[1:]),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "checkpoint": checkpoint, "workload": f"{args.bench}, {args.limit or 'all'} problems x {args.n} samples, "
                                              f"up to {args.max_tokens} tokens, temperature 1",
        "ours": sides["ours"], "users_loop": sides["users_loop"],
        "ours_vs_users_loop_speed": sides["ours"]["samples_per_s"] / sides["users_loop"]["samples_per_s"],
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"ours / user's loop: {result['ours_vs_users_loop_speed']:.2f}x; wrote {RESULT}")


if __name__ == "__main__":
    main()
