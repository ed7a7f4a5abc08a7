"""The `reasonrl` command line: it parses the arguments and calls the function of rl/api.py that does the work."""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import yaml

from evals.predictions import PredictionsError
from evals.report import markdown_table
from model.config import ConfigError
from problems import DATA_SOURCES, TEST_DATASETS
from rl import api
from rl.api import EVAL_OUT, SEARCH_CONCURRENCY
from rl.config import describe
from rl.demo import demo
from rl.reward_model_training import train_reward_model
from rl.trainer import RunDiverged


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
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), yaml.safe_load(value)


def add_job_arguments(parser: argparse.ArgumentParser, config_help: str) -> None:
    """What `train` and `distill` take alike: the job file, overrides, --resume, --overwrite, --ray-address."""
    parser.add_argument("config", nargs="?", help=config_help)
    parser.add_argument("overrides", nargs="*", help="section.field=value overrides")
    parser.add_argument("--resume", action="store_true", help="continue from the latest complete checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete what trainer.output_dir holds and start afresh")
    parser.add_argument("--ray-address", help="join an existing Ray cluster instead of starting one")


def job_arguments(args: argparse.Namespace) -> dict:
    """`train`'s and `distill`'s parsed job arguments as the API takes them (--overwrite as its override)."""
    return {"config": args.config, "overrides": args.overrides + (["trainer.overwrite=true"] if args.overwrite else []),
            "resume": args.resume, "ray_address": args.ray_address}


def build_parser() -> argparse.ArgumentParser:
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
    init.add_argument("--overwrite", action="store_true", help="replace what a non-empty --out folder holds")
    init.set_defaults(run=run_model_init)
    info = model_commands.add_parser("info", help="what a checkpoint folder holds (sizes, parameters, servability)")
    info.add_argument("checkpoint", type=Path, help="checkpoint folder")
    info.set_defaults(run=run_model_info)

    train_parser = commands.add_parser(
        "train", help="run a GRPO job from a YAML config", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config fields (override any with section.field=value):\n  " + describe().replace("\n", "\n  "))
    add_job_arguments(train_parser, "YAML config (experiments/*.yaml); default: built-in defaults")
    train_parser.set_defaults(run=run_train)

    distill_parser = commands.add_parser(
        "distill", help="distil a teacher into the student: on_policy (the teacher scores every token the student "
                        "samples) or traces (fine-tuning on the teacher's verified answers)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="the distill section (override any field with distill.field=value):\n  "
               + "\n  ".join(line for line in describe().splitlines() if line.startswith("distill.")))
    add_job_arguments(distill_parser, "YAML config with a distill section (experiments/tiny_distill.yaml)")
    distill_parser.set_defaults(run=run_distill)

    sft_parser = commands.add_parser("sft", help="supervised warm start on synthetic reference solutions")
    sft_parser.add_argument("--checkpoint", required=True, help="checkpoint folder to start from")
    sft_parser.add_argument("--out", required=True, help="folder to write the warmed-up checkpoint into")
    sft_parser.add_argument("--steps", type=_at_least(1), default=300, help="optimizer steps (>= 1)")
    sft_parser.add_argument("--lr", type=_number_at_least(0, strictly=True), default=1e-3, help="learning rate (> 0)")
    sft_parser.set_defaults(run=run_sft)

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
    eval_parser.add_argument("-n", "-k", dest="n", type=_at_least(1), default=None,
                             help="samples per problem (>= 1; default 16), or searches per problem with --search "
                                  "(default 1; a greedy search runs once)")
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
    eval_parser.add_argument("--speculative-tokens", type=_at_least(0), default=0,
                             help="tokens the policy's MTP layers draft per step, verified by the policy (vLLM's MTP "
                                  "speculative decoding: same distribution, speed measured by "
                                  "experiments/bench_mtp.py; default 0 = off)")
    eval_parser.add_argument("--search", help="answer each problem by a search method (mcts, beam, best_of_n, "
                                              "weighted_best_of_n, self_consistency, dvts, greedy) instead of sampling")
    eval_parser.add_argument("--budget", type=_at_least(1), default=0, help="policy tokens per search (with --search)")
    eval_parser.add_argument("--reward-model", help="reward model folder valuing the search (`reasonrl train-rm`; "
                                                    "default: the sympy step checker)")
    eval_parser.add_argument("--with-checker", action="store_true",
                             help="with --reward-model: zero its value where the sympy step checker finds a false "
                                  "equation (the best step ranker measured: docs/results.md, 'Reward models')")
    eval_parser.add_argument("--concurrency", type=_at_least(1), default=SEARCH_CONCURRENCY,
                             help=f"with --search: searches run at once on each engine, their engine calls batched "
                                  f"(default {SEARCH_CONCURRENCY}; the answers do not depend on it)")
    eval_parser.add_argument("--tools", nargs="+", default=None, metavar="TOOL",
                             help="tools the policy may call as it answers (python: a fenced python block, run in "
                                  "the sandbox; its output comes back to the policy), as rollout.tools in training")
    eval_parser.add_argument("--max-turns", type=_at_least(1), default=4,
                             help="with --tools: engine calls per answer at most (a tool call ends one)")
    eval_parser.add_argument("--tool-timeout", type=_number_at_least(0, strictly=True), default=5.0,
                             help="with --tools: a call's time limit in the sandbox, seconds")
    eval_parser.add_argument("--max-observation-tokens", type=_at_least(1), default=64,
                             help="with --tools: tokens of one tool output, fences included (longer output is cut)")
    eval_parser.add_argument("--out", type=Path, help=f"folder for results.json and samples.jsonl "
                                                      f"(default: {EVAL_OUT}/<model or predictions name>)")
    eval_parser.add_argument("--problem-field", default=None, help="a benchmark or predictions file's problem field")
    eval_parser.add_argument("--answer-field", default="answer", help="a benchmark file's gold answer field")
    eval_parser.add_argument("--id-field", default=None, help="a benchmark or predictions file's id field")
    eval_parser.add_argument("--output-field", default=None, help="a predictions file's outputs field")
    eval_parser.set_defaults(run=run_eval)

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
    solve_parser.add_argument("--speculative-tokens", type=_at_least(0), default=0,
                              help="tokens the policy's MTP layers draft per step (default 0 = off)")
    solve_parser.add_argument("--tools", nargs="+", default=(), metavar="TOOL",
                              help="tools the policy may call as it writes (python: a fenced python block, run in the "
                                   "sandbox; its output is part of the step, counted as prefill)")
    solve_parser.add_argument("--tool-timeout", type=_number_at_least(0, strictly=True), default=5.0,
                              help="with --tools: a call's time limit in the sandbox, seconds")
    solve_parser.add_argument("--max-observation-tokens", type=_at_least(1), default=64,
                              help="with --tools: tokens of one tool output, fences included (longer output is cut)")
    solve_parser.add_argument("--html", type=Path, help="write the tree as a page to open in a browser")
    solve_parser.add_argument("--json", type=Path, help="write the result and the whole tree as JSON")
    solve_parser.add_argument("--verbose", action="store_true", help="show vLLM's and torch's start-up notices")
    solve_parser.set_defaults(run=run_solve)

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
    rm_parser.set_defaults(run=run_train_rm)

    demo = commands.add_parser("demo", help="the main job on the embedded default (tiny policy, CPU): one seed in 8-15 "
                                            "minutes, or the multi-seed table with --seeds")
    demo.add_argument("--out", type=Path, default=None,
                      help="folder for the runs' files, one subfolder per seed, replaced on every demo (default: "
                           "runs/demo for the main job, runs/<job file name>_demo for another)")
    demo.add_argument("--seeds", type=_at_least(1), default=1,
                      help="how many seeds to run (0, 1, ..., N-1; default 1)")
    demo.add_argument("--config", type=Path, default=None,
                      help="the job file to run on each seed (default: experiments/tiny_arith.yaml, the main job)")
    demo.add_argument("--result", type=Path, default=None,
                      help="where the figures go (default: demo.json in the --out folder; the project's own tables: "
                           "experiments/results/demo.json, written by --seeds 3 --result experiments/results/demo.json)")
    demo.set_defaults(run=run_demo)
    return parser


def summary_table(summary: dict, training: str = "GRPO") -> str:
    """A few lines for the end of `reasonrl train` (or `distill`, `training` naming what ran): held-out scores before
    and after, time, where things are."""
    lines = [f"run folder: {summary['output_dir']}  ({summary['steps']} {training} steps)"]
    before, after = summary.get("eval_before"), summary.get("eval_after")
    if before and after:
        n = int(after.get("eval/n", 0)) or "n"
        width = max(14, len(f"before {training}") + 1)
        lines.append(f"{'held-out':<{width}}{'pass@1':>16}{f'maj@{n}':>8}{f'pass@{n}':>8}")
        for name, row in ((f"before {training}", before), (f"after {training}", after)):
            lines.append(f"{name:<{width}}{row['eval/pass@1']:>9.3f} ±{row['eval/pass@1_stderr']:.3f}"
                         f"{row['eval/maj@n']:>8.3f}{row['eval/pass@n']:>8.3f}")
    minutes = {k.removeprefix("time/").removesuffix("_s"): v / 60 for k, v in summary["timings"].items()}
    lines.append("minutes: " + ", ".join(f"{k} {v:.1f}" for k, v in minutes.items()))
    lines.append(f"plot: {summary['plot']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the subcommands


def run_model_init(args: argparse.Namespace) -> None:
    api.model_init(args.preset, args.out, args.seed, overwrite=args.overwrite)


def run_model_info(args: argparse.Namespace) -> None:
    for key, value in api.model_info(args.checkpoint).items():
        print(f"{key}: {value}")


def run_train(args: argparse.Namespace) -> None:
    print(summary_table(api.train(**job_arguments(args))))


def run_distill(args: argparse.Namespace) -> None:
    summary = api.distill(**job_arguments(args))
    print(summary_table(summary, training="distillation"))
    if "traces" in summary:
        print(f"traces: {summary['traces']['kept']} kept in {summary['traces_file']}")


def run_sft(args: argparse.Namespace) -> None:
    api.sft(args.checkpoint, args.out, steps=args.steps, lr=args.lr)


def parse_levels(text: str) -> tuple[int, ...]:
    """--levels: comma-separated integers."""
    try:
        levels = tuple(int(level) for level in text.split(","))
    except ValueError:
        raise ConfigError(f"--levels must be comma-separated integers, got {text!r}") from None
    if min(levels) < 1:
        raise ConfigError(f"--levels: synthetic levels start at 1, got {text!r}")
    return levels


def run_eval(args: argparse.Namespace) -> None:
    levels = parse_levels(args.levels)
    if args.predictions and args.tools:
        raise ConfigError("--tools with --predictions: saved outputs are graded as they are; the tools act while a "
                          "checkpoint answers (--model)")
    if args.predictions:
        out = args.out or EVAL_OUT / Path(args.predictions).stem
        results = api.grade_predictions(args.predictions, args.bench, limit=args.limit, seed=args.seed,
                                        id_field=args.id_field, problem_field=args.problem_field,
                                        output_field=args.output_field, out=out, levels=levels)
    else:
        out = args.out or EVAL_OUT / Path(args.model).resolve().name
        results = api.evaluate_checkpoint(args.model, args.bench, n=args.n, limit=args.limit,
                                          max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                                          seed=args.seed, system_prompt=args.system_prompt, few_shot=args.few_shot,
                                          workers=args.workers, search=args.search, budget=args.budget,
                                          reward_model=args.reward_model, concurrency=args.concurrency,
                                          with_checker=args.with_checker, out=out,
                                          speculative_tokens=args.speculative_tokens,
                                          problem_field=args.problem_field or "problem",
                                          answer_field=args.answer_field, id_field=args.id_field or "id",
                                          levels=levels, tools=args.tools, max_turns=args.max_turns,
                                          tool_timeout_s=args.tool_timeout,
                                          max_observation_tokens=args.max_observation_tokens)
    print(markdown_table(list(results.values())))
    print(f"results: {out}/results.json, per-problem records: {out}/samples.jsonl")


def run_solve(args: argparse.Namespace) -> None:
    result = api.solve(args.problem, args.model, method=args.method, budget_tokens=args.budget, gold=args.gold,
                       temperature=args.temperature, seed=args.seed, html=args.html, json_out=args.json,
                       reward_model=args.reward_model, with_checker=args.with_checker, verbose=args.verbose,
                       speculative_tokens=args.speculative_tokens, tools=args.tools,
                       tool_timeout_s=args.tool_timeout, max_observation_tokens=args.max_observation_tokens,
                       **dict(args.option))
    print(f"answer: {result.answer}" + ("" if result.correct is None else
                                        f" ({'correct' if result.correct else 'wrong'})"))
    print("".join(result.steps).rstrip())
    print("tokens: " + ", ".join(f"{k} {v}" for k, v in result.tokens.to_dict().items()))


def run_train_rm(args: argparse.Namespace) -> None:
    report = train_reward_model(args.policy, args.out, kind=args.kind, label=args.label,
                                levels=parse_levels(args.levels), num_problems=args.problems,
                                num_eval_problems=args.eval_problems, solutions=args.solutions,
                                rollouts=args.rollouts, epochs=args.epochs, max_tokens=args.max_tokens, lr=args.lr,
                                seed=args.seed, labels_dir=args.labels)
    print(f"reward model: {report['model']}, report: {args.out}/report.json")


def run_demo(args: argparse.Namespace) -> None:
    demo(args.out, seeds=args.seeds, result_path=args.result, config=args.config)


OVERRIDE = re.compile(r"^[A-Za-z_]\w*\.[A-Za-z_]\w*=")  # section.field=value


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line; `train`'s overrides may also come after its flags (`train job.yaml --resume
    trainer.steps=5`), which argparse alone would refuse."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if getattr(args, "overrides", None) is not None:
        if args.config is not None and OVERRIDE.match(args.config):  # no job file, overrides only
            args.overrides.insert(0, args.config)
            args.config = None
        args.overrides += [arg for arg in rest if OVERRIDE.match(arg)]
        rest = [arg for arg in rest if not OVERRIDE.match(arg)]
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        args.run(args)
    except (ConfigError, PredictionsError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:  # Ctrl-C: a training run's message says where it stopped, how to resume
        print(str(interrupt) or "interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
