"""Does a search fail to find right solutions, or fail to pick them? (issue 9's diagnosis)

For each method, on held-out synthetic problems of levels 2 and 3, the share of problems it answers right beside the
share whose tree (or sample set) holds at least one right finished solution (its oracle accuracy: what a perfect
picker would answer), with the finished solutions it holds, nodes and policy tokens. One local vLLM engine serves
experiments/bench_search.py's policy; its reward models score (both are trained there first).

    .venv/bin/python experiments/search_oracle.py --problems 30 --budget 661 --methods best_of_n,mcts_puct
    # about 3 minutes a best-of-N or MCTS method, 6 with scored rollouts

Writes experiments/results/search_oracle.json, keeping the methods measured earlier on the same problems and budget.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_search import CACHE, METHODS, POLICY_RUN  # noqa: E402 - the benchmark's policy, reward models, methods

RESULTS = REPO / "experiments" / "results" / "search_oracle.json"
POLICY = POLICY_RUN / "sft"

# name -> (method, options, reward model): bench_search.py's best-of-N and MCTS variants, one with 4 children, and
# the voting one with its step expansions sampled at other temperatures than its rollouts (hotter: more distinct
# steps from a peaked policy; cooler: fewer garbled ones)
CONFIGS = {
    **{name: METHODS[name] for name in METHODS if name == "best_of_n" or name.startswith("mcts")},
    "mcts_rollouts_k4": ("mcts", {"selection": "puct", "num_children": 4, "scored_rollouts": True}, "prm"),
    **{f"mcts_rollouts_vote_step_T{t}": ("mcts", {**METHODS["mcts_rollouts_vote"][1], "step_temperature": t}, "prm")
       for t in (0.7, 1.3, 1.6)},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=30, help="held-out problems per level (levels 2 and 3)")
    parser.add_argument("--budget", type=int, default=661, help="policy tokens per problem (661 = 16x greedy's)")
    parser.add_argument("--methods", default=",".join(CONFIGS))
    args = parser.parse_args()

    from model import load_tokenizer
    from model.vllm_engine import make_engine
    from problems import build_prompt, load_split
    from rl.demo import machine_description
    from search.api import solve, verifier_for
    from search.reward_models import value_function
    from search.vllm_generator import VllmStepGenerator

    tokenizer = load_tokenizer(POLICY)
    generator = VllmStepGenerator(make_engine(POLICY, max_model_len=512, seed=0), tokenizer)
    value_fns = {kind: value_function(CACHE / f"rm_{kind}" / "model", True) for kind in ("prm", "orm")}
    problems = [p for level in (2, 3)
                for p in load_split("synthetic", "test", num_eval=args.problems, seed=7, levels=[level])]
    results = {}
    for name in args.methods.split(","):
        method, options, rm = CONFIGS[name]
        rows, started = [], time.perf_counter()
        for i, problem in enumerate(problems):
            result = solve(build_prompt(problem, tokenizer), generator, method, budget_tokens=args.budget,
                           value_fn=value_fns[rm], gold=problem.answer, temperature=1.0, max_tokens=96,
                           max_step_tokens=32, seed=1 + i, **options)
            verify = verifier_for(problem.answer)
            finished = [n for n in result.tree.nodes() if n.terminal and n.answer is not None]
            rows.append({"level": problem.level, "correct": bool(result.correct),
                         "oracle": any(verify(n.text()) for n in finished), "finished": len(finished),
                         "nodes": sum(1 for _ in result.tree.nodes()), "policy_tokens": result.tokens.policy})
        n = len(rows)
        results[name] = {key: sum(float(r[key]) for r in rows) / n
                         for key in ("correct", "oracle", "finished", "nodes", "policy_tokens")}
        results[name]["seconds"] = time.perf_counter() - started
        print(name, {k: round(v, 3) for k, v in results[name].items()}, flush=True)
    setting = {"problems": len(problems), "levels": [2, 3], "budget_tokens": args.budget}
    earlier = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    commands = {}
    if all(earlier.get(key) == value for key, value in setting.items()):  # same problems and budget: keep the rest
        commands = earlier["commands"]
        results = {**earlier["results"], **results}
    commands.update({name: " ".join(["python", *sys.argv]) for name in args.methods.split(",")})
    RESULTS.write_text(json.dumps({
        "machine": machine_description(), "date": time.strftime("%Y-%m-%d"), **setting,
        "options": {name: CONFIGS[name][1] for name in results}, "commands": commands, "results": results},
        indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
