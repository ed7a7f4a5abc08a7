"""The `reasonrl` command line. Each subcommand calls a Python function of the same name."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def model_init(preset_name: str, out: Path, seed: int = 0) -> Path:
    """Write a freshly initialised policy (HF DeepseekV3ForCausalLM layout) with the project's tokenizer."""
    import torch

    from model import Transformer, load_tokenizer, preset, save_pretrained

    tokenizer = load_tokenizer()
    args = preset(preset_name, vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    model = Transformer(args)
    save_pretrained(model, out)
    print(f"wrote {out}: {preset_name} preset, {model.num_parameters() / 1e6:.2f}M parameters "
          f"({model.num_parameters(active=True) / 1e6:.2f}M active per token)")
    return out


def train(config: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), *, resume: bool = False,
          ray_address: str | None = None, log=print) -> dict:
    """Run a GRPO job from a YAML config (plus `section.field=value` overrides); returns the run's summary."""
    from rl.config import load_config
    from rl.trainer import GRPOTrainer

    overrides = list(overrides)
    if resume:
        overrides.append("trainer.resume=true")
    if ray_address:
        overrides.append(f"ray.address={ray_address}")
    trainer = GRPOTrainer(load_config(config, overrides), log=log)
    try:
        return trainer.fit()
    finally:
        trainer.shutdown()


def sft(checkpoint: str | Path, out: str | Path, *, levels: tuple[int, ...] = (1, 2, 3), num_problems: int = 4000,
        steps: int = 300, batch_size: int = 32, lr: float = 1e-3, seed: int = 0) -> Path:
    """Supervised warm start of a checkpoint on synthetic reference solutions."""
    from rl.data import split_synthetic
    from rl.sft import sft_from_checkpoint

    train_problems, _ = split_synthetic(num_problems, 0, seed, levels)
    return sft_from_checkpoint(checkpoint, out, train_problems, steps=steps, batch_size=batch_size, lr=lr, seed=seed)


def evaluate_checkpoint(checkpoint: str | Path, dataset: str = "synthetic", *, k: int = 4, limit: int = 0,
                        max_tokens: int = 256, temperature: float = 1.0, seed: int = 0) -> dict:
    """pass@1 / maj@k / pass@k of a checkpoint (served by vLLM) on the test split of a dataset of rl.data's table:
    synthetic (the held-out problems, seeded by `seed`), gsm8k, math500 (or math), aime2024 (aime24), aime2025
    (aime25). `limit` keeps the first N problems (0 = all; synthetic: the standard 200)."""
    from model import load_tokenizer
    from rl.data import load_split
    from rl.evaluate import evaluate
    from rl.rollout import RolloutWorker

    problems = load_split(dataset, "test", num_eval=limit, seed=seed)
    worker = RolloutWorker(str(checkpoint), max_model_len=2048, seed=seed)
    return evaluate(worker.generate, problems, load_tokenizer(checkpoint), k=k, max_tokens=max_tokens,
                    temperature=temperature, seed=seed)


def build_parser() -> argparse.ArgumentParser:
    from rl.data import DATASET_NAMES

    parser = argparse.ArgumentParser(prog="reasonrl", description="GRPO training and search for reasoning policies.")
    commands = parser.add_subparsers(dest="command", required=True)

    model_parser = commands.add_parser("model", help="create and inspect policies")
    model_commands = model_parser.add_subparsers(dest="model_command", required=True)
    init = model_commands.add_parser("init", help="write a freshly initialised policy checkpoint")
    init.add_argument("--preset", default="tiny", help="model size preset (tiny, small)")
    init.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    init.add_argument("--seed", type=int, default=0, help="initialisation seed")

    train_parser = commands.add_parser("train", help="run a GRPO job from a YAML config")
    train_parser.add_argument("config", nargs="?", help="YAML config (experiments/*.yaml); default: built-in defaults")
    train_parser.add_argument("overrides", nargs="*", help="section.field=value overrides")
    train_parser.add_argument("--resume", action="store_true", help="continue from the latest checkpoint")
    train_parser.add_argument("--ray-address", help="join an existing Ray cluster instead of starting one")

    sft_parser = commands.add_parser("sft", help="supervised warm start on synthetic reference solutions")
    sft_parser.add_argument("--checkpoint", required=True)
    sft_parser.add_argument("--out", required=True)
    sft_parser.add_argument("--steps", type=int, default=300)
    sft_parser.add_argument("--lr", type=float, default=1e-3)

    eval_parser = commands.add_parser("eval", help="score a checkpoint: pass@1, maj@k, pass@k")
    eval_parser.add_argument("--checkpoint", required=True)
    eval_parser.add_argument("--dataset", default="synthetic", choices=DATASET_NAMES,
                             help="test set to score on (math = math500, aime24 = aime2024, aime25 = aime2025)")
    eval_parser.add_argument("-k", type=int, default=4, help="samples per problem")
    eval_parser.add_argument("--limit", type=int, default=0, help="first N problems only")
    eval_parser.add_argument("--max-tokens", type=int, default=256)
    eval_parser.add_argument("--temperature", type=float, default=1.0)

    demo = commands.add_parser("demo", help="the main job on the embedded default (tiny policy, CPU)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for the run's files")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from model.config import ConfigError

    try:
        if args.command == "model" and args.model_command == "init":
            model_init(args.preset, args.out, args.seed)
        elif args.command == "train":
            summary = train(args.config, args.overrides, resume=args.resume, ray_address=args.ray_address)
            print(json.dumps(summary, indent=2, default=str))
        elif args.command == "sft":
            sft(args.checkpoint, args.out, steps=args.steps, lr=args.lr)
        elif args.command == "eval":
            result = evaluate_checkpoint(args.checkpoint, args.dataset, k=args.k, limit=args.limit,
                                         max_tokens=args.max_tokens, temperature=args.temperature)
            print(json.dumps(result["scores"], indent=2))
        elif args.command == "demo":
            from rl.demo import demo

            demo(args.out)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
