"""The `reasonrl` command line. Each subcommand calls a Python function of the same name."""

from __future__ import annotations

import argparse
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reasonrl", description="GRPO training and search for reasoning policies.")
    commands = parser.add_subparsers(dest="command", required=True)

    model_parser = commands.add_parser("model", help="create and inspect policies")
    model_commands = model_parser.add_subparsers(dest="model_command", required=True)
    init = model_commands.add_parser("init", help="write a freshly initialised policy checkpoint")
    init.add_argument("--preset", default="tiny", help="model size preset (tiny, small)")
    init.add_argument("--out", type=Path, required=True, help="checkpoint folder to write")
    init.add_argument("--seed", type=int, default=0, help="initialisation seed")

    demo = commands.add_parser("demo", help="the main job on the embedded default (tiny policy, CPU)")
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="folder for the run's files")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from model.config import ConfigError

    try:
        if args.command == "model" and args.model_command == "init":
            model_init(args.preset, args.out, args.seed)
        elif args.command == "demo":
            from rl.demo import demo

            demo(args.out)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
