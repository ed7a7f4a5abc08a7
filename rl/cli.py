"""The `reasonrl` command line. Each subcommand calls a Python function of the same name."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from contextlib import contextmanager
from typing import Callable, Iterator
from pathlib import Path


def model_init(preset_name: str, out: str | Path, seed: int = 0) -> Path:
    """Write a freshly initialised policy (HF DeepseekV3ForCausalLM layout) with the project's tokenizer."""
    from model import init_pretrained

    policy = init_pretrained(preset_name, out, seed=seed)
    print(f"wrote {out}: {preset_name} preset, {policy.num_parameters() / 1e6:.2f}M parameters "
          f"({policy.num_parameters(active=True) / 1e6:.2f}M active per token)")
    return Path(out)


def model_info(checkpoint: str | Path) -> dict:
    """What a checkpoint folder holds: architecture, sizes, parameters, and whether vLLM on CPU can serve it."""
    from model import ModelArgs
    from model.checkpoint import check_checkpoint, load_weights

    folder = check_checkpoint(checkpoint)
    config = json.loads((folder / "config.json").read_text())
    info = {"folder": str(folder), "architecture": ", ".join(config.get("architectures") or []) or "?",
            "files": sorted(p.name for p in folder.iterdir())}
    try:
        args = ModelArgs.load(folder / "config.json")
    except ValueError:  # another architecture: transformers and vLLM read it, our model class does not
        return info | {"parameters": sum(t.numel() for t in load_weights(folder).values())}  # as stored
    from model import load_pretrained

    policy = load_pretrained(folder)
    info |= {"parameters": policy.num_parameters(), "active_parameters_per_token": policy.num_parameters(active=True),
             "layers": args.num_hidden_layers, "hidden_size": args.hidden_size, "vocab_size": args.vocab_size,
             "routed_experts": args.n_routed_experts, "experts_per_token": args.num_experts_per_tok,
             "kv_lora_rank": args.kv_lora_rank, "qk_rope_head_dim": args.qk_rope_head_dim,
             "vllm_cpu": "; ".join(args.vllm_cpu_problems()) or "servable"}
    return info


def train(config: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), *, resume: bool = False,
          ray_address: str | None = None, log=print) -> dict:
    """Run a GRPO job from a YAML config (plus `section.field=value` overrides); returns the run's summary."""
    from rl.config import check_placement, load_config, local_resources
    from rl.trainer import GRPOTrainer

    overrides = list(overrides)
    if resume:
        overrides.append("trainer.resume=true")
    if ray_address:
        overrides.append(f"ray.address={ray_address}")
    config = load_config(config, overrides)  # every field checked here, before anything starts
    if config.ray.address is None:
        check_placement(config, local_resources(config))  # a cluster's resources are checked once it is joined
    trainer = GRPOTrainer(config, log=log)
    try:
        return trainer.fit()
    finally:
        trainer.shutdown()


def sft(checkpoint: str | Path, out: str | Path, *, levels: tuple[int, ...] = (1, 2, 3), num_problems: int = 4000,
        steps: int = 300, batch_size: int = 32, lr: float = 1e-3, seed: int = 0) -> Path:
    """Supervised warm start of a checkpoint on synthetic reference solutions."""
    from model import ConfigError
    from model.checkpoint import check_checkpoint
    from problems import split_synthetic
    from rl.sft import sft_from_checkpoint

    check_checkpoint(checkpoint)
    if Path(out).is_file():
        raise ConfigError(f"--out {out} is a file, not a folder to write the checkpoint into")
    train_problems, _ = split_synthetic(num_problems, 0, seed, levels)
    return sft_from_checkpoint(checkpoint, out, train_problems, steps=steps, batch_size=batch_size, lr=lr, seed=seed)


SEARCH_CONCURRENCY = 16  # searches at once per engine in `eval --search` (experiments/bench_search_batching.py)
EVAL_OUT = Path("runs/eval")  # where `reasonrl eval` writes results.json and samples.jsonl unless --out says


def load_benchmarks(bench: str | list[str], *, limit: int = 0, seed: int = 0, problem_field: str = "problem",
                    answer_field: str = "answer", id_field: str = "id",
                    levels: tuple[int, ...] = (1, 2, 3)) -> dict[str, list]:
    """Benchmark name -> its problems, for a comma-separated list (or a list) of names: a test set of problems'
    table (synthetic, gsm8k, math500/math, aime2024/aime24, aime2025/aime25) or a JSON Lines file of the user's own
    (its fields named by problem_field, answer_field and id_field). `limit` keeps the first N of each (0 = all;
    synthetic: its standard 200 held-out problems); `levels` are the synthetic set's (the demo trains on [1]).

    Raises:
        ConfigError: an unknown or training-only set, a missing or malformed file, limit < 0.
    """
    from model.config import ConfigError
    from problems import load_custom, load_split

    names = [b.strip() for b in (bench.split(",") if isinstance(bench, str) else bench) if b.strip()]
    if not names:
        raise ConfigError("no benchmark named: give one or more with --bench (e.g. gsm8k,math500,aime24)")
    if limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    benchmarks = {}
    for name in names:
        if name.endswith((".jsonl", ".json")) or "/" in name:
            problems = load_custom(name, problem_field=problem_field, answer_field=answer_field, id_field=id_field)
            benchmarks[Path(name).stem] = problems[:limit] if limit else problems
        else:
            benchmarks[name] = load_split(name, "test", num_eval=limit, seed=seed, levels=levels)
    return benchmarks


def evaluate_checkpoint(model: str | Path, bench: str | list[str] = "synthetic", *, n: int = 16, limit: int = 0,
                        max_tokens: int = 1024, temperature: float = 0.6, top_p: float = 0.95, seed: int = 0,
                        system_prompt: str | None = None, few_shot: int = 0, workers: int = 1,
                        search: str | None = None, budget: int = 0, reward_model: str | Path | None = None,
                        with_checker: bool = False, concurrency: int = SEARCH_CONCURRENCY,
                        out: str | Path | None = None, problem_field: str = "problem", answer_field: str = "answer",
                        id_field: str = "id", levels: tuple[int, ...] = (1, 2, 3), log=print) -> dict:
    """Score a checkpoint (ours or any Hugging Face causal LM, served by vLLM) on one or more benchmarks.

    n samples per problem at (temperature, top_p); graded by the rewards grader training uses; pass@1, pass@k for
    k = 1, 2, 4, ..., n and maj@n, each with its standard error (evals.metrics). `few_shot` worked examples go
    before each problem (problems.few_shot_examples; for base models). `workers` > 1 spreads generation over that
    many Ray rollout workers (the cluster at RAY_ADDRESS, else a local one). With `search` (a search.METHODS key),
    each of a problem's n answers is what that search chooses with `budget` policy tokens, valued by the reward
    model folder `reward_model` (zeroed where the sympy step checker finds a false equation, `with_checker`; no
    folder: the checker alone); searches are spread over the workers like samples, `concurrency` at once on each
    engine with their engine calls batched.
    With `out`, writes results.json and samples.jsonl there.

    Returns:
        benchmark name -> evals.BenchmarkResult (scores, per-problem records, settings).

    Raises:
        ConfigError: n, max_tokens or workers < 1, limit or few_shot < 0, a temperature < 0 or a top_p outside
            (0, 1], an unknown or training-only benchmark, a malformed benchmark file, a checkpoint folder that is
            missing, a file or damaged, an output folder that is a file, a cluster too small for the workers: all
            before vLLM starts.
    """
    from model import load_tokenizer
    from model.checkpoint import check_checkpoint
    from model.config import ConfigError
    from problems import build_prompt, few_shot_examples
    from rl.evaluate import evaluate, evaluate_with_search
    from rl.rollout import open_generator

    for name, value, low in (("n", n, 1), ("max_tokens", max_tokens, 1), ("workers", workers, 1),
                             ("concurrency", concurrency, 1)):
        if value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")
    if not temperature >= 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder to write results into")
    if search is not None:
        check_search_request("--search", search, budget, reward_model)
    benchmarks = load_benchmarks(bench, limit=limit, seed=seed, problem_field=problem_field,
                                 answer_field=answer_field, id_field=id_field, levels=levels)
    examples = {name: few_shot_examples(name, few_shot, seed=seed, levels=levels) for name in benchmarks}
    check_checkpoint(model)
    tokenizer = load_tokenizer(model)
    prompts = {name: [build_prompt(p, tokenizer, system_prompt, examples[name]) for p in problems]
               for name, problems in benchmarks.items()}
    longest_prompt = max(len(prompt) for ps in prompts.values() for prompt in ps)
    results = {}
    with open_generator(str(model), longest_prompt + max_tokens, seed=seed, workers=workers,
                        search=search is not None) as generate:
        for name, problems in benchmarks.items():
            with progress_report(name, len(problems), log) as progress:
                if search is None:
                    result = evaluate(generate, problems, tokenizer, k=n, max_tokens=max_tokens,
                                      temperature=temperature, top_p=top_p, seed=seed, system_prompt=system_prompt,
                                      examples=examples[name], prompts=prompts[name], name=name,
                                      progress=progress)["result"]
                else:
                    result = evaluate_with_search(generate, problems, prompts[name], method=search,
                                                  budget_tokens=budget, k=n,
                                                  reward_model=reward_model and str(Path(reward_model).resolve()),
                                                  with_checker=with_checker, concurrency=concurrency,
                                                  temperature=temperature, max_tokens=max_tokens, seed=seed,
                                                  name=name, progress=progress)["result"]
            result.settings["model"] = str(model)
            results[name] = result
            s = result.scores
            each = ("samples" if search is None else
                    f"searches ({search}, {s['mean_policy_tokens']:.0f} of {budget} policy tokens a search)")
            log(f"{name}: {s['problems']} problems x {n} {each}: pass@1 {s['pass@1']:.3f} ± {s['pass@1_stderr']:.3f}, "
                f"maj@{n} {s['maj@n']:.3f}, pass@{n} {s['pass@n']:.3f} ({s['seconds']:.0f}s)")
    if out is not None:
        from evals.report import write_results

        write_results(out, list(results.values()), {"model": str(model), "n": n, "max_tokens": max_tokens,
                                                    "temperature": temperature, "top_p": top_p, "seed": seed,
                                                    "system_prompt": system_prompt, "few_shot": few_shot,
                                                    "workers": workers, "limit": limit, "search": search,
                                                    "budget": budget, "reward_model": reward_model and str(reward_model),
                                                    "with_checker": with_checker,
                                                    "synthetic_levels": list(levels)})
    return results


@contextmanager
def progress_report(name: str, total: int, log=print) -> Iterator[Callable[[int], None]]:
    """Yields update(problems done): a progress bar on a terminal; written to a log file, a line at each tenth."""
    if sys.stdout.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn(f"{name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      transient=True) as bar:
            task = bar.add_task(name, total=total)
            yield lambda done: bar.update(task, completed=done)
        return
    tenths_reported = set()

    def update(done: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth not in tenths_reported:
            tenths_reported.add(tenth)
            log(f"{name}: {done}/{total} problems generated")

    yield update


def grade_predictions(predictions: str | Path, bench: str, *, limit: int = 0, seed: int = 0,
                      id_field: str | None = None, problem_field: str | None = None, output_field: str | None = None,
                      out: str | Path | None = None, levels: tuple[int, ...] = (1, 2, 3), log=print) -> dict:
    """Grade generations made elsewhere (or an earlier `reasonrl eval`'s samples.jsonl) against a benchmark's gold
    answers, without a model: the same grader and statistics as `evaluate_checkpoint`. The file's format is in
    evals/predictions.py; a benchmark named as a JSON Lines file of the user's takes its fields by their default names.

    Returns:
        benchmark name -> evals.BenchmarkResult; each result's settings hold the matching report (rows read,
        problems matched, problems without outputs, rows that matched no problem).

    Raises:
        ConfigError / PredictionsError: an unknown benchmark, a missing or malformed file, no row matching.
    """
    from evals.grading import grade_outputs
    from evals.predictions import read_predictions

    results = {}
    for name, problems in load_benchmarks(bench, limit=limit, seed=seed, levels=levels).items():
        matched, outputs, report = read_predictions(predictions, problems, id_field=id_field,
                                                    problem_field=problem_field, output_field=output_field,
                                                    benchmark=name)
        results[name] = result = grade_outputs(name, matched, outputs, settings={"predictions": report})
        missing = len(report["problems_without_outputs"])
        s = result.scores
        log(f"{name}: {s['problems']} problems graded from {predictions} ({report['rows']} rows; {missing} of the "
            f"benchmark's {len(problems)} problems have no outputs, {report['rows_unmatched']} rows match no problem): "
            f"pass@1 {s['pass@1']:.3f} ± {s['pass@1_stderr']:.3f}")
    if out is not None:
        from evals.report import write_results

        write_results(out, list(results.values()), {"predictions": str(predictions), "limit": limit})
    return results


def check_search_request(flag: str, method: str, budget: int, reward_model: str | Path | None,
                         options: dict | None = None) -> None:
    """The mistakes of a search request (`eval --search`, `solve --method`) as ConfigErrors, before any engine
    starts: an unknown method (named by flag) or option, a budget < 1, a reward-model folder that does not load."""
    from model.config import ConfigError
    from search import METHODS
    from search.api import check_options

    if method not in METHODS:
        raise ConfigError(f"{flag} must be one of {', '.join(sorted(METHODS))}, got {method!r}")
    if budget < 1:
        raise ConfigError(f"{flag} needs --budget (policy tokens per search, >= 1), got {budget}")
    try:
        check_options(method, options or {})
    except ValueError as error:
        raise ConfigError(f"--option: {error}") from None
    if reward_model is not None:
        from model.reward_model import load_reward_model

        load_reward_model(reward_model)  # a wrong folder is named now, not after the engine started


def solve(problem: str, model: str | Path, *, method: str = "mcts", budget_tokens: int = 2000, gold: str | None = None,
          temperature: float = 1.0, seed: int = 0, html: str | Path | None = None, json_out: str | Path | None = None,
          reward_model: str | Path | None = None, with_checker: bool = False, **options) -> "SearchResult":
    """Search for the answer to one problem with a checkpoint served by vLLM (search.solve on a local engine).

    The value of a node is the reward model's (`reasonrl train-rm`'s folder; with `with_checker`, zeroed where the
    sympy step checker finds a false equation) when one is given; else, with MCTS and a `gold`, a rollout to the end
    checked against it (rollout_weight=1); else the step checker's share of valid equations (a rule-based process
    reward, no training needed). `options` are the method's and the search context's (search.method_options).

    Raises:
        ConfigError: an unknown method or option, a budget < 1, or a checkpoint or reward-model folder that is
            missing, a file or damaged: before vLLM starts.
    """
    from model import load_tokenizer
    from model.checkpoint import check_checkpoint
    from model.vllm_engine import make_engine
    from problems import Problem, build_prompt
    from search import solve as search_solve
    from search.reward_models import value_function
    from search.vllm_generator import VllmStepGenerator

    check_search_request("--method", method, budget_tokens, reward_model, options)
    check_checkpoint(model)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # vLLM's INFO lines would bury the answer
    tokenizer = load_tokenizer(model)
    prompt = build_prompt(Problem("cli", problem, gold or "", None, "cli", None), tokenizer)
    generator = VllmStepGenerator(make_engine(model, max_model_len=len(prompt) + options.get("max_tokens", 1024),
                                              seed=seed), tokenizer)

    if method == "mcts" and gold is not None and reward_model is None and not options.get("scored_rollouts"):
        options.setdefault("rollout_weight", 1.0)
    value_fn = None if options.get("rollout_weight") == 1.0 else value_function(reward_model, with_checker)
    result = search_solve(prompt, generator, method, budget_tokens=budget_tokens, gold=gold, value_fn=value_fn,
                          temperature=temperature, seed=seed, **options)
    if html is not None:
        Path(html).write_text(result.to_html(title=problem[:80]))
    if json_out is not None:
        Path(json_out).write_text(result.to_json(indent=1))
    return result


def _at_least(low: int):
    """argparse type: an integer >= low, with a message naming the bound."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    return parse


def _number_at_least(low: float, strictly: bool):
    """argparse type: a finite number > low (strictly) or >= low."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < low or (strictly and value == low):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>' if strictly else '>='} {low:g}, got {text}")
        return value
    return parse


def _search_option(text: str) -> tuple[str, object]:
    """argparse type: NAME=VALUE, the value read as YAML (2, 1.3, true, gumbel)."""
    import yaml

    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), yaml.safe_load(value)


def build_parser() -> argparse.ArgumentParser:
    from rl.config import describe
    from problems import TEST_DATASETS, DATA_SOURCES

    test_names = [name for source in DATA_SOURCES.values() if source.name in TEST_DATASETS
                  for name in (source.name, *source.aliases)]
    parser = argparse.ArgumentParser(prog="reasonrl", description="GRPO training and search for reasoning policies.")
    commands = parser.add_subparsers(dest="command", required=True)

    model_parser = commands.add_parser("model", help="create and inspect policies")
    model_commands = model_parser.add_subparsers(dest="model_command", required=True)
    init = model_commands.add_parser("init", help="write a freshly initialised policy checkpoint")
    init.add_argument("--preset", default="tiny", help="model size preset (tiny, small)")
    init.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    init.add_argument("--seed", type=int, default=0, help="initialisation seed")
    info = model_commands.add_parser("info", help="what a checkpoint folder holds (sizes, parameters, servability)")
    info.add_argument("checkpoint", type=Path, help="checkpoint folder")

    train_parser = commands.add_parser(
        "train", help="run a GRPO job from a YAML config", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config fields (override any with section.field=value):\n  " + describe().replace("\n", "\n  "))
    train_parser.add_argument("config", nargs="?", help="YAML config (experiments/*.yaml); default: built-in defaults")
    train_parser.add_argument("overrides", nargs="*", help="section.field=value overrides")
    train_parser.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint")
    train_parser.add_argument("--overwrite", action="store_true",
                              help="delete what trainer.output_dir holds and start afresh")
    train_parser.add_argument("--ray-address", help="join an existing Ray cluster instead of starting one")

    sft_parser = commands.add_parser("sft", help="supervised warm start on synthetic reference solutions")
    sft_parser.add_argument("--checkpoint", required=True, help="checkpoint folder to start from")
    sft_parser.add_argument("--out", required=True, help="folder to write the warmed-up checkpoint into")
    sft_parser.add_argument("--steps", type=_at_least(1), default=300, help="optimizer steps (>= 1)")
    sft_parser.add_argument("--lr", type=_number_at_least(0, strictly=True), default=1e-3, help="learning rate (> 0)")

    eval_parser = commands.add_parser(
        "eval", help="score a checkpoint, or grade saved generations: pass@1, pass@k, maj@n with standard errors",
        description="Score a checkpoint (--model) on benchmarks, or grade generations made elsewhere (--predictions). "
                    "Writes results.json and samples.jsonl into --out and prints a markdown table.")
    source = eval_parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", "--checkpoint", dest="model", help="checkpoint folder (ours or any HF causal LM)")
    source.add_argument("--predictions", help="JSON Lines of outputs made elsewhere, or a samples.jsonl to re-grade "
                                              "(fields: see evals/predictions.py)")
    eval_parser.add_argument("--bench", "--dataset", dest="bench", default="synthetic",
                             help="comma-separated benchmarks: " + ", ".join(test_names) + ", or a JSON Lines file of "
                                  "your own (default: synthetic)")
    eval_parser.add_argument("-n", "-k", dest="n", type=_at_least(1), default=16, help="samples per problem (>= 1)")
    eval_parser.add_argument("--limit", type=_at_least(0), default=0, help="first N problems of each (0 = all)")
    eval_parser.add_argument("--max-tokens", type=_at_least(1), default=1024, help="tokens per sample at most")
    eval_parser.add_argument("--temperature", type=_number_at_least(0, strictly=False), default=0.6,
                             help="sampling temperature (0 = greedy; DeepSeek-R1 reports 0.6)")
    eval_parser.add_argument("--top-p", type=_number_at_least(0, strictly=True), default=0.95,
                             help="nucleus sampling, in (0, 1] (DeepSeek-R1 reports 0.95)")
    eval_parser.add_argument("--seed", type=int, default=0, help="sampling seed (and the synthetic set's seed)")
    eval_parser.add_argument("--levels", default="1,2,3", help="the synthetic set's levels, comma-separated (the demo "
                                                              "trains and evaluates on 1)")
    eval_parser.add_argument("--system-prompt", help="system message put before each problem")
    eval_parser.add_argument("--few-shot", type=_at_least(0), default=0,
                             help="worked examples before each problem, for base models (from the benchmark's "
                                  "training split, else the project's 4 MATH-style ones; default 0)")
    eval_parser.add_argument("--workers", type=_at_least(1), default=1,
                             help="Ray rollout workers to spread generation over (the cluster at RAY_ADDRESS, else "
                                  "a local one; each takes a GPU, or a CPU on a CPU machine; default 1: one engine "
                                  "in this process)")
    eval_parser.add_argument("--search", help="answer each problem by a search method (mcts, beam, best_of_n, "
                                              "weighted_best_of_n, self_consistency, dvts, greedy) instead of sampling")
    eval_parser.add_argument("--budget", type=_at_least(1), default=0, help="policy tokens per search (with --search)")
    eval_parser.add_argument("--reward-model", help="reward model folder valuing the search (`reasonrl train-rm`; "
                                                    "default: the sympy step checker)")
    eval_parser.add_argument("--with-checker", action="store_true",
                             help="with --reward-model: zero its value where the sympy step checker finds a false "
                                  "equation (the best step ranker measured: see the README)")
    eval_parser.add_argument("--concurrency", type=_at_least(1), default=SEARCH_CONCURRENCY,
                             help=f"with --search: searches run at once on each engine, their engine calls batched "
                                  f"(default {SEARCH_CONCURRENCY}; the answers do not depend on it)")
    eval_parser.add_argument("--out", type=Path, help=f"folder for results.json and samples.jsonl "
                                                      f"(default: {EVAL_OUT}/<model or predictions name>)")
    eval_parser.add_argument("--problem-field", default=None, help="a benchmark or predictions file's problem field")
    eval_parser.add_argument("--answer-field", default="answer", help="a benchmark file's gold answer field")
    eval_parser.add_argument("--id-field", default=None, help="a benchmark or predictions file's id field")
    eval_parser.add_argument("--output-field", default=None, help="a predictions file's outputs field")

    solve_parser = commands.add_parser("solve", help="search for the answer to one problem (MCTS or a baseline)")
    solve_parser.add_argument("problem", help="the problem text")
    solve_parser.add_argument("--model", required=True, help="checkpoint folder")
    solve_parser.add_argument("--method", default="mcts", help="mcts, greedy, self_consistency, best_of_n, "
                                                               "weighted_best_of_n, beam, dvts")
    solve_parser.add_argument("--budget", type=_at_least(1), default=2000, help="policy tokens to spend")
    solve_parser.add_argument("--gold", help="the known answer: MCTS then values nodes by verified rollouts, and "
                                             "the result says whether the answer is correct")
    solve_parser.add_argument("--temperature", type=_number_at_least(0, strictly=False), default=1.0)
    solve_parser.add_argument("--seed", type=int, default=0)
    solve_parser.add_argument("--reward-model", help="reward model folder valuing the search (`reasonrl train-rm`'s "
                                                     "<out>/model; default: the sympy step checker, or with --gold "
                                                     "MCTS's rollouts checked against it)")
    solve_parser.add_argument("--with-checker", action="store_true",
                              help="zero the reward model's value where the step checker finds a false equation")
    solve_parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", type=_search_option,
                              help="a method option, repeatable: e.g. selection=gumbel, num_children=2, "
                                   "scored_rollouts=true, answer_by=vote, step_temperature=0.7, max_tokens=256")
    solve_parser.add_argument("--html", type=Path, help="write the tree as a page to open in a browser")
    solve_parser.add_argument("--json", type=Path, help="write the result and the whole tree as JSON")

    rm_parser = commands.add_parser(
        "train-rm", help="train a process (or outcome) reward model for search, with Monte-Carlo step labels",
        description="Label the policy's solutions to synthetic problems by Monte-Carlo rollouts from every step "
                    "(Math-Shepherd), train the policy's backbone with a scalar head on them, and report how well it "
                    "ranks held-out steps (AUC, first-error F1) beside the sympy step checker. Writes <out>/model/ "
                    "(a DeepseekV3ForTokenClassification folder), the label files and <out>/report.json.")
    rm_parser.add_argument("--policy", required=True, help="the policy checkpoint whose solutions are labelled")
    rm_parser.add_argument("--out", type=Path, required=True, help="folder for the reward model, labels and report")
    rm_parser.add_argument("--kind", choices=("prm", "orm"), default="prm",
                           help="prm: scored after every step; orm: after the whole solution (default prm)")
    rm_parser.add_argument("--label", choices=("soft", "hard"), default="soft",
                           help="a PRM's step target: the share of rollouts reaching the answer, or whether any does")
    rm_parser.add_argument("--levels", default="2,3", help="synthetic levels, comma-separated (default 2,3)")
    rm_parser.add_argument("--problems", type=_at_least(1), default=300, help="training problems (default 300)")
    rm_parser.add_argument("--eval-problems", type=_at_least(1), default=100, help="held-out problems (default 100)")
    rm_parser.add_argument("--solutions", type=_at_least(1), default=4, help="solutions sampled per problem")
    rm_parser.add_argument("--rollouts", type=_at_least(1), default=8, help="rollouts per step prefix")
    rm_parser.add_argument("--max-tokens", type=_at_least(1), default=96,
                           help="tokens per solution or rollout; one cut off there is labelled wrong (default 96)")
    rm_parser.add_argument("--epochs", type=_at_least(1), default=3)
    rm_parser.add_argument("--lr", type=_number_at_least(0, strictly=True), default=1e-4)
    rm_parser.add_argument("--seed", type=int, default=0)
    rm_parser.add_argument("--labels", type=Path, help="folder holding (or to hold) the label files, to share them "
                                                       "between a PRM and an ORM (default: --out)")

    demo = commands.add_parser("demo", help="the main job on the embedded default (tiny policy, CPU), on N seeds")
    demo.add_argument("--out", type=Path, default=None,
                      help="folder for the runs' files, one subfolder per seed, replaced on every demo (default: "
                           "runs/demo for the main job, runs/<job file name>_demo for another)")
    demo.add_argument("--seeds", type=_at_least(1), default=3, help="how many seeds to run (0, 1, ..., N-1)")
    demo.add_argument("--config", type=Path, default=None,
                      help="the job file to run on each seed (default: experiments/tiny_arith.yaml, the main job)")
    demo.add_argument("--result", type=Path, default=None,
                      help="where the figures go (default: experiments/results/demo.json for the main job, "
                           "experiments/results/<job file name>.json for another)")
    return parser


def summary_table(summary: dict) -> str:
    """A few lines for the end of `reasonrl train`: held-out scores before and after, time, where things are."""
    lines = [f"run folder: {summary['output_dir']}  ({summary['steps']} GRPO steps)"]
    before, after = summary.get("eval_before"), summary.get("eval_after")
    if before and after:
        n = int(after.get("eval/n", 0)) or "n"
        lines.append(f"{'held-out':<14}{'pass@1':>16}{f'maj@{n}':>8}{f'pass@{n}':>8}")
        for name, row in (("before GRPO", before), ("after GRPO", after)):
            lines.append(f"{name:<14}{row['eval/pass@1']:>9.3f} ±{row['eval/pass@1_stderr']:.3f}"
                         f"{row['eval/maj@n']:>8.3f}{row['eval/pass@n']:>8.3f}")
    minutes = {k.removeprefix("time/").removesuffix("_s"): v / 60 for k, v in summary["timings"].items()}
    lines.append("minutes: " + ", ".join(f"{k} {v:.1f}" for k, v in minutes.items()))
    lines.append(f"plot: {summary['plot']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from evals.predictions import PredictionsError
    from model.config import ConfigError

    try:
        if args.command == "model" and args.model_command == "init":
            model_init(args.preset, args.out, args.seed)
        elif args.command == "model" and args.model_command == "info":
            for key, value in model_info(args.checkpoint).items():
                print(f"{key}: {value}")
        elif args.command == "train":
            overrides = args.overrides + (["trainer.overwrite=true"] if args.overwrite else [])
            summary = train(args.config, overrides, resume=args.resume, ray_address=args.ray_address)
            print(summary_table(summary))
        elif args.command == "sft":
            sft(args.checkpoint, args.out, steps=args.steps, lr=args.lr)
        elif args.command == "eval":
            from evals.report import markdown_table

            try:
                levels = tuple(int(level) for level in args.levels.split(","))
            except ValueError:
                raise ConfigError(f"--levels must be comma-separated integers, got {args.levels!r}") from None
            if args.predictions:
                out = args.out or EVAL_OUT / Path(args.predictions).stem
                results = grade_predictions(args.predictions, args.bench, limit=args.limit, seed=args.seed,
                                            id_field=args.id_field, problem_field=args.problem_field,
                                            output_field=args.output_field, out=out, levels=levels)
            else:
                out = args.out or EVAL_OUT / Path(args.model).resolve().name
                results = evaluate_checkpoint(args.model, args.bench, n=args.n, limit=args.limit,
                                              max_tokens=args.max_tokens, temperature=args.temperature,
                                              top_p=args.top_p, seed=args.seed, system_prompt=args.system_prompt,
                                              few_shot=args.few_shot, workers=args.workers, search=args.search,
                                              budget=args.budget, reward_model=args.reward_model,
                                              concurrency=args.concurrency,
                                              with_checker=args.with_checker, out=out,
                                              problem_field=args.problem_field or "problem",
                                              answer_field=args.answer_field, id_field=args.id_field or "id",
                                              levels=levels)
            print(markdown_table(list(results.values())))
            print(f"results: {out}/results.json, per-problem records: {out}/samples.jsonl")
        elif args.command == "solve":
            result = solve(args.problem, args.model, method=args.method, budget_tokens=args.budget, gold=args.gold,
                           temperature=args.temperature, seed=args.seed, html=args.html, json_out=args.json,
                           reward_model=args.reward_model, with_checker=args.with_checker, **dict(args.option))
            print(f"answer: {result.answer}" + ("" if result.correct is None else
                                                f" ({'correct' if result.correct else 'wrong'})"))
            print("".join(result.steps).rstrip())
            print("tokens: " + ", ".join(f"{k} {v}" for k, v in result.tokens.to_dict().items()))
        elif args.command == "train-rm":
            from rl.reward_model_training import train_reward_model

            try:
                levels = tuple(int(level) for level in args.levels.split(","))
            except ValueError:
                raise ConfigError(f"--levels must be comma-separated integers, got {args.levels!r}") from None
            report = train_reward_model(args.policy, args.out, kind=args.kind, label=args.label, levels=levels,
                                        num_problems=args.problems, num_eval_problems=args.eval_problems,
                                        solutions=args.solutions, rollouts=args.rollouts, epochs=args.epochs,
                                        max_tokens=args.max_tokens, lr=args.lr, seed=args.seed,
                                        labels_dir=args.labels)
            print(f"reward model: {report['model']}, report: {args.out}/report.json")
        elif args.command == "demo":
            from rl.demo import CONFIG, RESULT, demo

            config = args.config or CONFIG
            if not config.is_file():
                raise FileNotFoundError(f"--config: no job file at {config}")
            main_job = config.resolve() == CONFIG
            result = args.result or (RESULT if main_job else RESULT.with_name(f"{config.stem}.json"))
            out = args.out or Path("runs/demo" if main_job else f"runs/{config.stem}_demo")
            demo(out, seeds=args.seeds, result_path=result, config=config)
    except (ConfigError, PredictionsError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
