"""The project's tokenizer (built by model/build_tokenizer.py, shipped in model/tokenizer/), and the one way
completion tokens become text."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

TOKENIZER_DIR = Path(__file__).parent / "tokenizer"
# Added tokens that are part of what a reasoning model writes (and what format rewards read); every special token
# (begin/end of sentence, padding, chat-role markers) is control, not text. The shipped tokenizer does not mark
# them special (model/build_tokenizer.py); checkpoints made before it did, so decoding keeps them either way.
TEXT_SPECIAL_TOKENS = ("<think>", "</think>")


def load_tokenizer(folder: str | Path = TOKENIZER_DIR):
    """A transformers PreTrainedTokenizerFast from a folder (default: the shipped tokenizer)."""
    from transformers import AutoTokenizer  # imported here: transformers is slow to import

    return AutoTokenizer.from_pretrained(str(folder))


def decode_completion(tokenizer: Any, token_ids: Sequence[int]) -> str:
    """The text of a completion, as training rewards, evaluation and search all grade it: control tokens (eos,
    padding, chat-role markers) dropped, the reasoning tags <think> and </think> kept."""
    text_ids = {tokenizer.convert_tokens_to_ids(token) for token in TEXT_SPECIAL_TOKENS}
    control = set(tokenizer.all_special_ids) - text_ids
    return tokenizer.decode([t for t in token_ids if t not in control], skip_special_tokens=False)
