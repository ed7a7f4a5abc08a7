"""The `reasonrl` command line. Each subcommand calls a Python function of the same name."""

from __future__ import annotations

import argparse
import json
import math
import sys
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
    from rl.data import split_synthetic
    from rl.sft import sft_from_checkpoint

    check_checkpoint(checkpoint)
    if Path(out).is_file():
        raise ConfigError(f"--out {out} is a file, not a folder to write the checkpoint into")
    train_problems, _ = split_synthetic(num_problems, 0, seed, levels)
    return sft_from_checkpoint(checkpoint, out, train_problems, steps=steps, batch_size=batch_size, lr=lr, seed=seed)


def evaluate_checkpoint(checkpoint: str | Path, dataset: str = "synthetic", *, k: int = 4, limit: int = 0,
                        max_tokens: int = 256, temperature: float = 1.0, seed: int = 0) -> dict:
    """pass@1 (with its standard error) / maj@k / pass@k of a checkpoint (served by vLLM) on the test split of a
    dataset of rl.data's table: synthetic (the held-out problems, seeded by `seed`), gsm8k, math500 (or math),
    aime2024 (aime24), aime2025 (aime25). `limit` keeps the first N problems (0 = all; synthetic: the standard 200).

    Raises:
        ValueError (ConfigError): for k < 1, limit < 0, max_tokens < 1, a negative temperature, an unknown or
            training-only dataset, or a checkpoint folder that is missing, a file or damaged: all before vLLM starts.
    """
    from model import load_tokenizer
    from model.checkpoint import check_checkpoint
    from model.config import ConfigError
    from rl.data import load_split
    from rl.evaluate import evaluate
    from rl.rollout import RolloutWorker

    for name, value, low in (("k", k, 1), ("limit", limit, 0), ("max_tokens", max_tokens, 1)):
        if value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")
    if not temperature >= 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    problems = load_split(dataset, "test", num_eval=limit, seed=seed)
    check_checkpoint(checkpoint)
    worker = RolloutWorker(str(checkpoint), max_model_len=2048, seed=seed, quiet=True)
    return evaluate(worker.generate, problems, load_tokenizer(checkpoint), k=k, max_tokens=max_tokens,
                    temperature=temperature, seed=seed)


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


def build_parser() -> argparse.ArgumentParser:
    from rl.config import describe
    from rl.data import TEST_DATASETS, DATA_SOURCES

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

    eval_parser = commands.add_parser("eval",
                                      help="score a checkpoint: pass@1 (with its standard error), maj@k, pass@k")
    eval_parser.add_argument("--checkpoint", required=True, help="checkpoint folder (ours or any HF causal LM)")
    eval_parser.add_argument("--dataset", default="synthetic", choices=test_names,
                             help="test set to score on (math = math500, aime24 = aime2024, aime25 = aime2025)")
    eval_parser.add_argument("-k", type=_at_least(1), default=4, help="samples per problem (>= 1)")
    eval_parser.add_argument("--limit", type=_at_least(0), default=0, help="first N problems only (0 = all)")
    eval_parser.add_argument("--max-tokens", type=_at_least(1), default=256)
    eval_parser.add_argument("--temperature", type=_number_at_least(0, strictly=False), default=1.0, help="0 = greedy")

    demo = commands.add_parser("demo", help="the main job on the embedded default (tiny policy, CPU), on N seeds")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"),
                      help="folder for the runs' files (one subfolder per seed; replaced on every demo)")
    demo.add_argument("--seeds", type=_at_least(1), default=3, help="how many seeds to run (0, 1, ..., N-1)")
    return parser


def summary_table(summary: dict) -> str:
    """A few lines for the end of `reasonrl train`: held-out scores before and after, time, where things are."""
    lines = [f"run folder: {summary['output_dir']}  ({summary['steps']} GRPO steps)"]
    before, after = summary.get("eval_before"), summary.get("eval_after")
    if before and after:
        lines.append(f"{'held-out':<14}{'pass@1':>16}{'maj@k':>8}{'pass@k':>8}")
        for name, row in (("before GRPO", before), ("after GRPO", after)):
            lines.append(f"{name:<14}{row['eval/pass@1']:>9.3f} ±{row['eval/pass@1_stderr']:.3f}"
                         f"{row['eval/maj@k']:>8.3f}{row['eval/pass@k']:>8.3f}")
    minutes = {k.removeprefix("time/").removesuffix("_s"): v / 60 for k, v in summary["timings"].items()}
    lines.append("minutes: " + ", ".join(f"{k} {v:.1f}" for k, v in minutes.items()))
    lines.append(f"plot: {summary['plot']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
            result = evaluate_checkpoint(args.checkpoint, args.dataset, k=args.k, limit=args.limit,
                                         max_tokens=args.max_tokens, temperature=args.temperature)
            scores = result["scores"]
            print(f"{args.dataset}: {scores['problems']} problems x {scores['k']} samples: pass@1 "
                  f"{scores['pass@1']:.3f} ± {scores['pass@1_stderr']:.3f}, maj@k {scores['maj@k']:.3f}, "
                  f"pass@k {scores['pass@k']:.3f} ({scores['seconds']:.0f}s)")
        elif args.command == "demo":
            from rl.demo import demo

            demo(args.out, seeds=args.seeds)
    except (ConfigError, FileNotFoundError, NotADirectoryError, IsADirectoryError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
