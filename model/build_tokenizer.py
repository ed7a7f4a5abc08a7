"""Build the project's tokenizer: byte-level BPE trained on GSM8K train and synthetic arithmetic text.

Digits are split one by one before BPE, so numbers are spelled digit by digit and arithmetic stays
learnable for a small model. The files land in model/tokenizer/ and ship with the repository;
rerun this script to rebuild them (the result is deterministic for a given corpus and vocab size):

    python -m model.build_tokenizer [--vocab-size 2048]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = Path(__file__).parent / "tokenizer"

# DeepSeek-R1's special tokens; ids 0, 1, 2 are bos, eos, pad (ModelArgs' defaults).
BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
THINK, END_THINK = "<think>", "</think>"
SPECIAL_TOKENS = [BOS, EOS, PAD, USER, ASSISTANT, THINK, END_THINK]
# The reasoning tags are text the model writes: whole tokens, but not "special", so that decoding with
# skip_special_tokens=True (TRL's GRPOTrainer, vLLM's output text) keeps them, as the tokenizers of
# DeepSeek-R1's distilled models and Qwen3 do. Marked special, TRL's format rewards would never see them.
TEXT_TOKENS = [THINK, END_THINK]

# R1-style chat: bos, then user and assistant turns; an assistant turn ends with eos.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}" + USER + "{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}" + ASSISTANT + "{{ message['content'] }}{{ eos_token }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)


def synthetic_arithmetic(n_lines: int, seed: int = 0) -> list[str]:
    """Lines of step-by-step arithmetic in the styles the policy will read and write."""
    rng = random.Random(seed)
    ops = ["+", "-", "*", "/"]
    lines = []
    for _ in range(n_lines):
        a, b = rng.randint(0, 999), rng.randint(1, 99)
        op = rng.choice(ops)
        result = {"+": a + b, "-": a - b, "*": a * b, "/": round(a / b, 2)}[op]
        lines.append(rng.choice([
            f"{a} {op} {b} = {result}",
            f"So {a} {op} {b} = {result}.",
            f"<<{a}{op}{b}={result}>>",
            f"{THINK}\nFirst, {a} {op} {b} = {result}.\n{END_THINK}\nThe answer is \\boxed{{{result}}}.",
            f"#### {result}",
        ]))
    return lines


def gsm8k_lines(path: Path) -> list[str]:
    lines = []
    for row in map(json.loads, path.read_text().splitlines()):
        lines += [row["question"], row["answer"]]
    return lines


def build(vocab_size: int, out_dir: Path = OUT_DIR) -> Tokenizer:
    corpus = gsm8k_lines(REPO / "data" / "gsm8k_train.jsonl") + synthetic_arithmetic(20000)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = json.loads(tokenizer.to_str())
    for token in saved["added_tokens"]:
        token["special"] = token["content"] not in TEXT_TOKENS
    (out_dir / "tokenizer.json").write_text(json.dumps(saved, indent=2, ensure_ascii=False))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
        "add_bos_token": False, "add_eos_token": False,
        "model_max_length": 2048, "clean_up_tokenization_spaces": False,
        "chat_template": CHAT_TEMPLATE,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    special = {"bos_token": BOS, "eos_token": EOS, "pad_token": PAD,
               "additional_special_tokens": [USER, ASSISTANT]}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2, ensure_ascii=False) + "\n")
    return tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    tokenizer = build(args.vocab_size, args.out)
    print(f"wrote {args.out} ({tokenizer.get_vocab_size()} tokens)")


if __name__ == "__main__":
    main()
