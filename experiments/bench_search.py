"""Search against its baselines at equal policy tokens (issue 9, section 5).

    .venv/bin/python experiments/bench_search.py                      # everything, cached stage by stage
    .venv/bin/python experiments/bench_search.py --problems 60 --multiples 1,4   # a smaller run

Stages (each cached under runs/, so a run that stops resumes where it was):
1. The policy: experiments/tiny_steps.yaml (SFT then GRPO on synthetic levels 2-3) trained into runs/tiny_steps if it
   is not there.
2. pass@k per level (2, 3 and 4, which training never saw) of its SFT and last GRPO checkpoints (`reasonrl eval`),
   since search lives on the diversity GRPO narrows; the checkpoint searched with is --checkpoint.
3. Reward models on that checkpoint (`reasonrl train-rm`): a PRM (Monte-Carlo soft labels) and an ORM on the same
   labels, with their step-ranking report.
4. Every method on the same held-out problems at budgets of 1x, 2x, 4x, 8x and 16x greedy's mean tokens: greedy,
   self-consistency, best-of-N and weighted best-of-N (ORM), step-level beam search (PRM), MCTS with PUCT, with
   Gumbel sequential halving (PRM values), with PUCT over scored rollouts (a node's value: the reward model's
   score of one sampled finish) and with path expansion (each simulation samples a path to the end, pruned at a
   false equation); no verifier during search: the gold only grades the answer. Accuracy with its
   standard error, policy and reward-model tokens, wall seconds per problem.

Writes experiments/results/search.json and experiments/results/search.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

POLICY_RUN = REPO / "runs" / "tiny_steps"
CACHE = REPO / "runs" / "bench_search"
RESULTS = REPO / "experiments" / "results" / "search.json"
PLOT = REPO / "experiments" / "results" / "search.png"

# name -> (search method, options, which reward model). Every reward model is combined with the sympy step checker
# (its value zeroed where the checker finds a false equation): on the held-out labelled steps that ranks steps best
# (stage 3's report: step AUC 0.998 against 0.783 for the learned PRM alone and 0.995 for the checker alone).
METHODS = {
    "self_consistency": ("self_consistency", {}, None),
    "best_of_n": ("best_of_n", {}, "orm"),
    "weighted_best_of_n": ("weighted_best_of_n", {}, "orm"),
    "beam": ("beam", {"beam_width": 4, "num_children": 4}, "prm"),
    "mcts_puct": ("mcts", {"selection": "puct", "num_children": 4}, "prm"),
    "mcts_gumbel": ("mcts", {"selection": "gumbel", "num_children": 4, "simulations_per_step": 8, "top_k": 4},
                    "prm"),
    # a node's value: the reward model's score of one sampled finish, kept in the tree as a candidate answer
    "mcts_rollouts": ("mcts", {"selection": "puct", "num_children": 2, "scored_rollouts": True}, "prm"),
    # the same tree, answering by the value-weighted vote over its finished solutions (weighted best-of-N's rule)
    "mcts_rollouts_vote": ("mcts", {"selection": "puct", "num_children": 2, "scored_rollouts": True,
                                    "answer_by": "vote"}, "prm"),
    # a simulation samples a whole path step by step from where it branches off, every step a node; a step with a
    # false equation (value 0) ends its path; answers by the value-weighted vote
    "mcts_paths_vote": ("mcts", {"selection": "puct", "expansion": "path", "prune_at": 0.0, "answer_by": "vote"},
                        "prm"),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(*args: str) -> None:
    """A reasonrl command in its own process (each stage's vLLM engine lives and dies with it)."""
    done = subprocess.run([sys.executable, "-m", "rl.cli", *args], cwd=REPO, text=True,
                          env={**os.environ, "VLLM_LOGGING_LEVEL": "WARNING"})
    if done.returncode:
        raise SystemExit(f"reasonrl {' '.join(args)} failed ({done.returncode})")


def ensure_policy() -> dict[str, Path]:
    """The tiny_steps run's SFT policy and last GRPO checkpoint, training them if they are not there."""
    checkpoints = sorted((POLICY_RUN / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    if not checkpoints:
        log("training the policy (experiments/tiny_steps.yaml)")
        run("train", "experiments/tiny_steps.yaml", "--overwrite")
        checkpoints = sorted((POLICY_RUN / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1]))
    return {"sft": POLICY_RUN / "sft", **{f"grpo_{c.name}": c for c in checkpoints}}


def pass_at_k(checkpoints: dict[str, Path], levels: list[int], n: int, limit: int, temperature: float) -> dict:
    """pass@1..n per level and checkpoint (cached)."""
    table = {}
    for name, folder in checkpoints.items():
        for level in levels:
            out = CACHE / "pass_at_k" / f"{name}_level{level}_T{temperature}_n{n}_l{limit}"
            if not (out / "results.json").exists():
                run("eval", "--model", str(folder), "--bench", "synthetic", "--levels", str(level), "-n", str(n),
                    "--limit", str(limit), "--temperature", str(temperature), "--top-p", "1", "--max-tokens", "96",
                    "--seed", "1", "--out", str(out))
            scores = json.loads((out / "results.json").read_text())["benchmarks"]["synthetic"]
            table.setdefault(name, {})[f"level_{level}"] = {
                k: scores[k] for k in scores if k.startswith(("pass@", "maj@")) or k == "problems"}
    return table


def ensure_reward_models(policy: Path, problems: int, rollouts: int) -> dict[str, Path]:
    folders = {}
    for kind in ("prm", "orm"):
        out = CACHE / f"rm_{kind}"
        if not (out / "report.json").exists():
            run("train-rm", "--policy", str(policy), "--out", str(out), "--kind", kind, "--labels", str(CACHE / "labels"),
                "--problems", str(problems), "--rollouts", str(rollouts), "--levels", "2,3")
        folders[kind] = out
    return folders


def search_stage(policy: Path, reward_models: dict[str, Path], methods: list[str], multiples: list[int],
                 problems_per_level: int, levels: list[int], temperature: float, workers: int,
                 concurrency: int = 1, cached_only: bool = False) -> dict:
    """Every method at every budget on the same problems, through `reasonrl eval --search`'s code: searches run
    inside Ray rollout workers next to their engines, answers graded by the rewards grader."""
    from model import load_tokenizer
    from problems import build_prompt, load_split
    from rl.evaluate import evaluate_with_search
    from rl.rollout import open_generator

    tokenizer = load_tokenizer(policy)
    problems = [p for level in levels
                for p in load_split("synthetic", "test", num_eval=problems_per_level, seed=7, levels=[level])]
    prompts = [build_prompt(p, tokenizer) for p in problems]
    folders = {kind: str(folder / "model") for kind, folder in reward_models.items()}
    table, runs = {}, {}
    engines = nullcontext(None) if cached_only else open_generator(str(policy), 512, seed=0, workers=workers,
                                                                     search=True)
    with engines as search:

        def run_method(name: str, method: str, options: dict, rm: str | None, budget: int) -> dict | None:
            path = CACHE / "search" / f"{name}_b{budget}_n{len(problems)}_T{temperature}.json"
            if cached_only and not path.exists():
                return None
            if not path.exists():
                started = time.perf_counter()
                result = evaluate_with_search(search, problems, prompts, method=method, budget_tokens=budget,
                                              reward_model=folders.get(rm), with_checker=rm is not None,
                                              temperature=temperature, max_tokens=96,
                                              max_step_tokens=32, seed=1, name=name, concurrency=concurrency,
                                              **options)["result"]
                rows = [{"id": p.id, "level": p.level, "correct": r["correct"][0],
                         **{f"{k}_tokens": v for k, v in r["search"][0]["tokens"].items() if k in ("policy", "reward")},
                         "prefill": r["search"][0]["tokens"]["prefill"],
                         "prefill_cached": r["search"][0]["tokens"]["prefill_cached"]}
                        for p, r in zip(problems, result.records)]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}) + "\n")
            return json.loads(path.read_text())

        greedy = run_method("greedy", "greedy", {}, None, 10**6)
        greedy_tokens = sum(r["policy_tokens"] for r in greedy["rows"]) / len(problems)
        table["greedy"] = {"1": summarize(greedy, 1.0)}
        log(f"greedy: accuracy {table['greedy']['1']['accuracy']:.3f}, {greedy_tokens:.1f} tokens a problem")
        for name in methods:
            method, options, rm = METHODS[name]
            for multiple in multiples:
                budget = max(1, round(multiple * greedy_tokens))
                run = run_method(name, method, options, rm, budget)
                if run is None:  # --cached-only: not measured yet
                    continue
                runs.setdefault(name, {})[str(multiple)] = run
                table.setdefault(name, {})[str(multiple)] = summary = summarize(run, multiple)
                log(f"{name} at {multiple}x ({budget} tokens): accuracy {summary['accuracy']:.3f} ± "
                    f"{summary['stderr']:.3f}, {summary['policy_tokens']:.0f} policy tokens, "
                    f"{summary['seconds_per_problem']:.2f} s a problem")
    return {"greedy_tokens": greedy_tokens, "problems": len(problems), "levels": levels, "workers": workers,
            "problems_per_level": problems_per_level, "methods": table, "mcts_against_baselines": comparisons(runs)}


def comparisons(runs: dict) -> dict:
    """MCTS minus each sampling baseline at the same budget, paired problem by problem: the mean difference in
    accuracy and its standard error (std of the per-problem differences / sqrt(problems))."""
    out = {}
    for mcts in (name for name in METHODS if name.startswith("mcts")):
        for baseline in ("self_consistency", "best_of_n", "weighted_best_of_n"):
            for multiple, run in runs.get(mcts, {}).items():
                other = runs.get(baseline, {}).get(multiple)
                if other is None:
                    continue
                diffs = [int(a["correct"]) - int(b["correct"]) for a, b in zip(run["rows"], other["rows"], strict=True)]
                mean = sum(diffs) / len(diffs)
                std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / max(len(diffs) - 1, 1))
                out[f"{mcts} - {baseline} at {multiple}x"] = {"difference": mean,
                                                             "stderr": std / math.sqrt(len(diffs))}
    return out


def summarize(run: dict, multiple: float) -> dict:
    rows = run["rows"]
    n = len(rows)
    accuracy = sum(r["correct"] for r in rows) / n
    per_level = {}
    for level in sorted({r["level"] for r in rows}):
        mine = [r["correct"] for r in rows if r["level"] == level]
        per_level[str(level)] = sum(mine) / len(mine)
    return {"multiple": multiple, "accuracy": accuracy, "stderr": math.sqrt(accuracy * (1 - accuracy) / n),
            "per_level": per_level, **{key: sum(r[key] for r in rows) / n for key in
                                       ("policy_tokens", "reward_tokens", "prefill", "prefill_cached")},
            "seconds_per_problem": run["seconds"] / n}


def plot(search: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, by_budget in search["methods"].items():
        points = sorted(by_budget.values(), key=lambda s: s["policy_tokens"])
        ax.errorbar([p["policy_tokens"] for p in points], [p["accuracy"] for p in points],
                    yerr=[p["stderr"] for p in points], marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("policy tokens per problem (mean)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"search at equal tokens: {search['problems']} synthetic problems, levels {search['levels']}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="sft", help="which policy to search with: sft or grpo_step_N")
    parser.add_argument("--problems", type=int, default=150, help="held-out problems per level")
    parser.add_argument("--levels", default="2,3,4")
    parser.add_argument("--multiples", default="1,2,4,8,16", help="budgets, in multiples of greedy's tokens")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--rm-problems", type=int, default=300, help="training problems for the reward models")
    parser.add_argument("--rm-rollouts", type=int, default=8)
    parser.add_argument("--pass-at-k-limit", type=int, default=200, help="problems per level for pass@k")
    parser.add_argument("--workers", type=int, default=2, help="Ray rollout workers the searches run in")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="searches at once per worker, their engine calls batched (answers do not depend on it)")
    parser.add_argument("--cached-only", action="store_true",
                        help="report what runs/bench_search already holds; measure nothing new")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    started = time.perf_counter()

    checkpoints = ensure_policy()
    log(f"policy checkpoints: {', '.join(checkpoints)}")
    table = pass_at_k({k: v for k, v in checkpoints.items() if k == "sft" or k == list(checkpoints)[-1]},
                      levels, 16, args.pass_at_k_limit, args.temperature)
    policy = checkpoints[args.checkpoint]
    reward_models = ensure_reward_models(policy, args.rm_problems, args.rm_rollouts)
    reports = {kind: json.loads((folder / "report.json").read_text()) for kind, folder in reward_models.items()}
    search = search_stage(policy, reward_models, args.methods.split(","), [int(m) for m in args.multiples.split(",")],
                          args.problems, levels, args.temperature, args.workers, args.concurrency, args.cached_only)
    RESULTS.write_text(json.dumps({
        "machine": f"{os.uname().machine}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                 text=True).stdout.strip(),
        "policy": {"checkpoint": args.checkpoint, "folder": str(policy.relative_to(REPO)), "pass_at_k": table},
        "reward_models": {kind: {k: report[k] for k in ("kind", "label", "labels", "quality", "settings")}
                          for kind, report in reports.items()},
        "search": search,
        "seconds": time.perf_counter() - started,
    }, indent=1) + "\n")
    plot(search)
    log(f"wrote {RESULTS.relative_to(REPO)} and {PLOT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
