"""The Python API: one function per `reasonrl` subcommand (the command line in rl/cli.py only parses and calls these).

    from rl import train, evaluate_checkpoint
    summary = train("experiments/tiny_arith.yaml", ["trainer.steps=20"])
    results = evaluate_checkpoint("runs/tiny_arith/checkpoints/step_20", "synthetic,gsm8k", n=4)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from evals.grading import grade_outputs
from evals.predictions import read_predictions
from evals.report import write_atomically, write_results
from model import ModelArgs, init_pretrained, load_pretrained, load_tokenizer
from model.checkpoint import check_checkpoint, load_weights
from model.config import ConfigError
from model.reward_model import load_reward_model
from model.vllm_engine import engine_kwargs, speculative_config
from problems import Problem, build_prompt, few_shot_examples, load_custom, load_split, split_synthetic
from rl.config import Config, check_placement, load_config, local_resources
from rl.distill import DISTILLERS, check_distill
from rl.evaluate import SEARCH_CONCURRENCY, evaluate, evaluate_with_search
from rl.rollout import open_generator
from rewards.tools import check_tokenizer, check_tools
from rl.sft import sft_from_checkpoint
from rl.tool_rollout import ToolSettings
from rl.trainer import GRPOTrainer
from search import METHODS, SearchContext, SearchResult
from search import solve as search_solve
from search.api import check_options
from search.reward_models import value_function


def model_init(preset_name: str, out: str | Path, seed: int = 0, *, overwrite: bool = False) -> Path:
    """Write a freshly initialised policy (HF DeepseekV3ForCausalLM layout) with the project's tokenizer.

    Raises:
        ConfigError: `out` is a file, or a folder that already holds something (a checkpoint's weights would be
            replaced and its optimizer and trainer state left beside them) unless `overwrite`, which empties it.
    """
    out = Path(out)
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ConfigError(f"--out {out} is not empty ({', '.join(sorted(p.name for p in out.iterdir())[:4])}"
                              f"{', ...' if len(list(out.iterdir())) > 4 else ''}); choose another folder, or "
                              "replace what it holds with --overwrite")
        shutil.rmtree(out)
    policy = init_pretrained(preset_name, out, seed=seed)
    print(f"wrote {out}: {preset_name} preset, {policy.num_parameters() / 1e6:.2f}M parameters "
          f"({policy.num_parameters(active=True) / 1e6:.2f}M active per token)")
    return out


def model_info(checkpoint: str | Path) -> dict:
    """What a checkpoint folder holds: architecture, sizes, parameters, and whether vLLM on CPU can serve it."""
    folder = check_checkpoint(checkpoint)
    config = json.loads((folder / "config.json").read_text())
    info = {"folder": str(folder), "architecture": ", ".join(config.get("architectures") or []) or "?",
            "files": sorted(p.name for p in folder.iterdir())}
    try:
        args = ModelArgs.load(folder / "config.json")
    except ValueError:  # another architecture: transformers and vLLM read it, our model class does not
        return info | {"parameters": sum(t.numel() for t in load_weights(folder).values())}  # as stored

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
    config = job_config(config, overrides, resume, ray_address)
    check_local_placement(config)
    return run_to_end(GRPOTrainer(config, log=log))


def distill(config: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), *, resume: bool = False,
            ray_address: str | None = None, log=print) -> dict:
    """Distil the config's teacher (distill.teacher) into its student (model.path), on_policy or from traces
    (distill.mode; rl/distill.py), into the run folder `train` writes; returns the run's summary.

    Raises:
        ConfigError: a bad field; no teacher, or one that is missing or damaged; on_policy, a teacher whose tokenizer
            or vocabulary differs from the student's: all before any actor starts.
    """
    config = job_config(config, overrides, resume, ray_address)
    check_distill(config)  # the teacher and its vocabulary, before anything starts (the drivers check it again)
    check_local_placement(config)
    return run_to_end(DISTILLERS[config.distill.mode](config, log=log))


def job_config(config: str | Path | None, overrides: list[str] | tuple[str, ...], resume: bool,
               ray_address: str | None) -> Config:
    """A job's configuration with `--resume` and `--ray-address` as overrides; every field checked here, before
    anything starts."""
    overrides = list(overrides) + (["trainer.resume=true"] if resume else [])
    if ray_address:
        overrides.append(f"ray.address={ray_address}")
    return load_config(config, overrides)


def check_local_placement(config: Config) -> None:
    """A local cluster's room for the job's actors (a cluster's resources are checked once it is joined)."""
    if config.ray.address is None:
        check_placement(config, local_resources(config))


def run_to_end(trainer: GRPOTrainer) -> dict:
    """The trainer's run to its end (or its error), its actors and Ray shut down either way; the run's summary.

    A Ctrl-C pressed again while the actors stop does not cut the shutdown short with a traceback: the first says
    the run is still stopping, the next quits at once (what Ray leaves, the next start clears: rl.ray_cluster)."""
    try:
        summary = trainer.fit()
    except BaseException as error:
        with ctrl_c_deferred(pending=str(error) if isinstance(error, KeyboardInterrupt) else ""):
            trainer.shutdown()
        raise
    with ctrl_c_deferred():
        trainer.shutdown()
    return summary


@contextmanager
def ctrl_c_deferred(pending: str = "") -> Iterator[None]:
    """Hold off Ctrl-C while the body runs (a run's shutdown): the first press says so, the second prints `pending`
    (the message of the interrupt being handled: where the run stopped, how to resume) and exits with 130 at once.
    Outside the main thread, where signal handlers cannot be set, the body just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = 0

    def on_ctrl_c(signum, frame) -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            print("still stopping the run's actors; Ctrl-C again quits without waiting", file=sys.stderr, flush=True)
            return
        if pending:
            print(pending, file=sys.stderr, flush=True)
        os._exit(130)  # no unwinding: a second interrupt must not end in a traceback from inside Ray's shutdown

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def sft(checkpoint: str | Path, out: str | Path, *, levels: tuple[int, ...] = (1, 2, 3), num_problems: int = 4000,
        steps: int = 300, batch_size: int = 32, lr: float = 1e-3, seed: int = 0) -> Path:
    """Supervised warm start of a checkpoint on synthetic reference solutions."""
    check_checkpoint(checkpoint)
    if Path(out).is_file():
        raise ConfigError(f"--out {out} is a file, not a folder to write the checkpoint into")
    train_problems, _ = split_synthetic(num_problems, 0, seed, levels)
    return sft_from_checkpoint(checkpoint, out, train_problems, steps=steps, batch_size=batch_size, lr=lr, seed=seed)


DETERMINISTIC_SEARCHES = ("greedy",)  # the same answer on every run: one run a problem is all there is to score
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
    if bench is None:
        raise ConfigError("no benchmark named: give one or more (e.g. 'gsm8k,math500,aime24')")
    if not levels or min(levels) < 1:
        raise ConfigError(f"levels must be synthetic levels >= 1, got {list(levels)}")
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


def evaluate_checkpoint(model: str | Path, bench: str | list[str] = "synthetic", *, n: int | None = None,
                        limit: int = 0, max_tokens: int = 1024, temperature: float = 0.6, top_p: float = 0.95,
                        seed: int = 0, system_prompt: str | None = None, few_shot: int = 0, workers: int = 1,
                        search: str | None = None, budget: int = 0, reward_model: str | Path | None = None,
                        with_checker: bool = False, concurrency: int = SEARCH_CONCURRENCY,
                        out: str | Path | None = None, problem_field: str = "problem", answer_field: str = "answer",
                        id_field: str = "id", levels: tuple[int, ...] = (1, 2, 3), tools: list[str] | None = None,
                        max_turns: int = 4, tool_timeout_s: float = 5.0, max_observation_tokens: int = 64,
                        speculative_tokens: int = 0, log=print) -> dict:
    """Score a checkpoint (ours or any Hugging Face causal LM, served by vLLM) on one or more benchmarks.

    n samples per problem (default 16) at (temperature, top_p); graded by the rewards grader training uses;
    pass@1, pass@k for k = 1, 2, 4, ..., n and maj@n, each with its standard error (evals.metrics). `few_shot`
    worked examples go before each problem (problems.few_shot_examples; for base models). `workers` > 1 spreads
    generation over that many Ray rollout workers (the cluster at RAY_ADDRESS, else a local one). With `search` (a
    search.METHODS key), each of a problem's n answers (default 1; a deterministic search runs once) is what that
    search chooses with `budget` policy tokens, valued by the reward model folder `reward_model` (zeroed where the
    sympy step checker finds a false equation, `with_checker`; no folder: the checker alone); searches are spread
    over the workers like samples, `concurrency` at once on each engine with their engine calls batched.
    With `tools` (["python"]), the policy may call them as it answers, as in training with rollout.tools (at most
    `max_turns` engine calls an answer, `tool_timeout_s` a call, `max_observation_tokens` an output; max_tokens
    counts the outputs too); sampled, the scores add the tool calls per answer; searched, a step that closes a call
    carries its output (search/tools.py). `speculative_tokens` > 0 has the checkpoint's
    MTP layers draft that many tokens a step (rollout.speculative_tokens; the samples' distribution is the same).
    With `out`, writes results.json and samples.jsonl there.

    Returns:
        benchmark name -> evals.BenchmarkResult (scores, per-problem records, settings).

    Raises:
        ConfigError: n, max_tokens or workers < 1, limit or few_shot < 0, a temperature < 0 or a top_p outside
            (0, 1], an unknown or training-only benchmark, a malformed benchmark file, a checkpoint folder that is
            missing, a file or damaged, an output folder that is a file, a cluster too small for the workers,
            speculative tokens for a checkpoint without MTP layers: all before vLLM starts.
    """
    if n is None:  # 16 samples a problem; a search is costly, so one unless asked for more
        n = 16 if search is None else 1
    if search in DETERMINISTIC_SEARCHES and n > 1:
        log(f"{search} is deterministic: one search a problem, not {n} identical ones")
        n = 1
    for name, value, low in (("n", n, 1), ("max_tokens", max_tokens, 1), ("workers", workers, 1),
                             ("concurrency", concurrency, 1)):
        if value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")
    if not temperature >= 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
    check_results_folder(out)
    tool_settings = None
    if tools:
        check_tool_flags(tools, tool_timeout_s, max_turns)
        tool_settings = ToolSettings(tuple(tools), max_turns, tool_timeout_s, max_observation_tokens)
    if search is not None:
        check_search_request("--search", search, budget, reward_model)
    elif budget:
        raise ConfigError(f"--budget {budget} is a search's token budget: give --search METHOD with it, or leave it "
                          "out to sample")
    benchmarks = load_benchmarks(bench, limit=limit, seed=seed, problem_field=problem_field,
                                 answer_field=answer_field, id_field=id_field, levels=levels)
    examples = {name: few_shot_examples(name, few_shot, seed=seed, levels=levels) for name in benchmarks}
    check_checkpoint(model)
    check_speculative_tokens(model, speculative_tokens)
    tokenizer = load_tokenizer(model)
    if tool_settings is not None:  # before vLLM starts
        check_tool_tokenizer(tokenizer, model, max_observation_tokens)
    prompts = {name: [build_prompt(p, tokenizer, system_prompt, examples[name]) for p in problems]
               for name, problems in benchmarks.items()}
    longest_prompt = max(len(prompt) for ps in prompts.values() for prompt in ps)
    search_tools = tool_settings.search_options() if tool_settings else {}
    results = {}
    with open_generator(str(model), longest_prompt + max_tokens, seed=seed, workers=workers,
                        search=search is not None, speculative_tokens=speculative_tokens) as generate:
        for name, problems in benchmarks.items():
            with progress_report(name, len(problems), log) as progress:
                if search is None:
                    result = evaluate(generate, problems, tokenizer, k=n, max_tokens=max_tokens,
                                      temperature=temperature, top_p=top_p, seed=seed, system_prompt=system_prompt,
                                      examples=examples[name], prompts=prompts[name], name=name,
                                      progress=progress, tools=tool_settings)["result"]
                else:
                    result = evaluate_with_search(generate, problems, prompts[name], method=search,
                                                  budget_tokens=budget, k=n,
                                                  reward_model=reward_model and str(Path(reward_model).resolve()),
                                                  with_checker=with_checker, concurrency=concurrency,
                                                  temperature=temperature, max_tokens=max_tokens, seed=seed,
                                                  name=name, progress=progress, **search_tools)["result"]
            result.settings["model"] = str(model)
            results[name] = result
            s = result.scores
            each = ("samples" if search is None else
                    f"searches ({search}, {s['mean_policy_tokens']:.0f} of {budget} policy tokens a search)")
            log(f"{name}: {s['problems']} problems x {n} {each}: pass@1 {s['pass@1']:.3f} ± {s['pass@1_stderr']:.3f}, "
                f"maj@{n} {s['maj@n']:.3f}, pass@{n} {s['pass@n']:.3f} ({s['seconds']:.0f}s)")
    if out is not None:
        write_results(out, list(results.values()), {"model": str(model), "n": n, "max_tokens": max_tokens,
                                                    "temperature": temperature, "top_p": top_p, "seed": seed,
                                                    "system_prompt": system_prompt, "few_shot": few_shot,
                                                    "workers": workers, "limit": limit, "search": search,
                                                    "budget": budget, "reward_model": reward_model and str(reward_model),
                                                    "with_checker": with_checker,
                                                    "synthetic_levels": list(levels), "tools": list(tools or []),
                                                    "speculative_tokens": speculative_tokens,
                                                    **({"max_turns": max_turns, "tool_timeout_s": tool_timeout_s,
                                                        "max_observation_tokens": max_observation_tokens}
                                                       if tools else {})})
    return results


@contextmanager
def progress_report(name: str, total: int, log=print, unit: str = "problems") -> Iterator[Callable[[int], None]]:
    """Yields update(done): a progress bar on a terminal; written to a log file, a line at each tenth."""
    if sys.stdout.isatty():
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
            log(f"{name}: {done}/{total} {unit}{' generated' if unit == 'problems' else ''}")

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
    check_results_folder(out)
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
        write_results(out, list(results.values()), {"predictions": str(predictions), "limit": limit})
    return results


def check_search_request(flag: str, method: str, budget: int, reward_model: str | Path | None,
                         options: dict | None = None) -> None:
    """The mistakes of a search request (`eval --search`, `solve --method`) as ConfigErrors, before any engine
    starts: an unknown method (named by flag) or option, a budget < 1, a reward-model folder that does not load."""
    if method not in METHODS:
        raise ConfigError(f"{flag} must be one of {', '.join(sorted(METHODS))}, got {method!r}")
    if budget < 1:
        raise ConfigError(f"{flag} needs --budget (policy tokens per search, >= 1), got {budget}")
    try:
        check_options(method, options or {})
    except ValueError as error:
        raise ConfigError(f"--option: {error}") from None
    if reward_model is not None:
        load_reward_model(reward_model)  # a wrong folder is named now, not after the engine started


def solve(problem: str, model: str | Path, *, method: str = "mcts", budget_tokens: int = 2000, gold: str | None = None,
          temperature: float = 1.0, seed: int = 0, html: str | Path | None = None, json_out: str | Path | None = None,
          reward_model: str | Path | None = None, with_checker: bool = False, verbose: bool = False,
          speculative_tokens: int = 0, tools: Sequence[str] = (), tool_timeout_s: float = 5.0,
          max_observation_tokens: int = 64, log=print, **options) -> SearchResult:
    """Search for the answer to one problem with a checkpoint served by vLLM: `search.solve(problem, model=...)`,
    with the request checked before the engine starts and the tree written to `html` / `json_out`.

    The value of a node is the reward model's (`reasonrl train-rm`'s folder; with `with_checker`, zeroed where the
    sympy step checker finds a false equation) when one is given; else as `search.api.default_evaluation` says (MCTS
    with a `gold`: rollouts to the end checked against it; otherwise the step checker's share of valid equations).
    `options` are the method's and the search context's (search.method_options). The budget spent shows as a
    progress bar on a terminal, a line at each tenth in a log; Ctrl-C stops the search. vLLM's and torch's notices
    are silenced unless `verbose`. With `tools` (["python"]) the policy may call them as it writes, each call's output
    part of its step (search/tools.py).

    Raises:
        ConfigError: an unknown method, option or tool, a budget < 1, an empty problem, a checkpoint or reward-model
            folder that is missing, a file or damaged, an output path that cannot be written, a tokenizer that cannot
            write the tool call format: before vLLM starts.
    """
    if not problem.strip():
        raise ConfigError("the problem is empty: give the question to solve")
    check_search_request("--method", method, budget_tokens, reward_model, options)
    check_checkpoint(model)
    check_speculative_tokens(model, speculative_tokens)
    for flag, path in (("--html", html), ("--json", json_out)):
        if path is not None:
            check_output_file(flag, path)
    check_prompt_fits(problem, model, options.get("max_tokens", SearchContext.max_tokens))
    if tools:
        check_tool_flags(tools, tool_timeout_s)
        check_tool_tokenizer(load_tokenizer(model), model, max_observation_tokens)
    # vLLM's and torch's notices (start-up warnings, deprecations) would bury the answer; verbose brings them back
    os.environ["VLLM_LOGGING_LEVEL"] = "INFO" if verbose else "ERROR"
    logging.getLogger("vllm").setLevel(logging.INFO if verbose else logging.ERROR)  # what it logs before its set-up
    value_fn = value_function(reward_model, with_checker) if reward_model is not None else None
    with warnings.catch_warnings(), native_stderr_held(unless=verbose), \
            progress_report(f"{method} search", budget_tokens, log, unit="policy tokens") as progress:
        if not verbose:
            warnings.simplefilter("ignore")
        result = search_solve(problem, model=model, method=method, budget_tokens=budget_tokens, gold=gold,
                              value_fn=value_fn, temperature=temperature, seed=seed, progress=progress,
                              speculative_tokens=speculative_tokens, tools=tuple(tools), tool_timeout_s=tool_timeout_s,
                              max_observation_tokens=max_observation_tokens, **options)
    if html is not None:
        write_atomically(html, result.to_html(title=problem[:80]))
    if json_out is not None:
        write_atomically(json_out, result.to_json(indent=1))
    return result


def check_tool_flags(tools: Sequence[str], tool_timeout_s: float, max_turns: int = 1) -> None:
    """A ConfigError naming the command's flag for an unknown tool, a time limit <= 0 or max_turns < 1."""
    check_tools(tools, "--tools")
    if max_turns < 1:
        raise ConfigError(f"--max-turns must be >= 1, got {max_turns}")
    if not tool_timeout_s > 0:
        raise ConfigError(f"--tool-timeout must be > 0, got {tool_timeout_s}")


def check_tool_tokenizer(tokenizer, model: str | Path, max_observation_tokens: int) -> None:
    """rewards.tools.check_tokenizer for a command's --tools: its errors name the command's flags."""
    try:
        check_tokenizer(tokenizer, max_observation_tokens, f"the tokenizer of {model}")
    except ConfigError as error:
        raise ConfigError(str(error).replace("rollout.max_observation_tokens", "--max-observation-tokens")
                          .replace("rollout.tools", "--tools")) from None


@contextmanager
def native_stderr_held(unless: bool = False) -> Iterator[None]:
    """Hold back everything written to the process's stderr (file descriptor 2) while the body runs, native code's
    too: the engine's C++ start-up notices, such as torch's NUMA binding warning, bypass Python's warnings and
    logging. Given back only if the body fails, so an error keeps its context. `unless`: do nothing."""
    if unless:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if failed:
                held.seek(0)
                os.write(2, held.read())


def check_speculative_tokens(model: str | Path, speculative_tokens: int) -> None:
    """Drafting asked of a checkpoint without MTP layers (or a negative count): a ConfigError before vLLM starts."""
    try:
        speculative_config(model, speculative_tokens)
    except ValueError as error:
        raise ConfigError(f"--speculative-tokens: {error}") from None


def check_prompt_fits(problem: str, model: str | Path, max_tokens: int) -> None:
    """A ConfigError when the problem's prompt and a whole solution of `max_tokens` do not fit the length the
    model's engine serves (`search.solve` starts it with make_engine's defaults), before that engine starts."""
    prompt = build_prompt(Problem("solve", problem, "", None, "solve", None), load_tokenizer(model))
    limit = engine_kwargs(model)["max_model_len"]
    if len(prompt) + max_tokens > limit:
        raise ConfigError(f"the problem is {len(prompt)} tokens long as a prompt; with max_tokens {max_tokens} for a "
                          f"solution it needs {len(prompt) + max_tokens}, and {model}'s engine serves {limit}: "
                          "shorten the problem or lower --option max_tokens")


def check_results_folder(out: str | Path | None) -> None:
    """A ConfigError when an evaluation's `--out` folder cannot take results.json and samples.jsonl: a file, a
    path under a file, a checkpoint folder or a training run's folder (its own samples.jsonl would be replaced)."""
    if out is None:
        return
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder to write results into")
    check_output_file("--out", out / "results.json")
    if (out / "config.yaml").is_file() and ((out / "metrics.jsonl").exists() or (out / "checkpoints").exists()):
        raise ConfigError(f"--out {out} holds a training run, whose samples.jsonl an evaluation would replace; "
                          "write the evaluation elsewhere (e.g. --out runs/eval/NAME)")
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        raise ConfigError(f"--out {out} is a checkpoint folder; write the evaluation elsewhere")


def check_output_file(flag: str, path: str | Path) -> None:
    """A ConfigError naming `flag` when `path` cannot be written as a file (a folder, or under a file), before the
    work whose result it would hold."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder, not a file to write")
    blocked = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocked is not None:
        raise ConfigError(f"{flag} {path}: {blocked} is a file, not a folder")
