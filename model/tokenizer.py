"""The project's tokenizer (built by model/build_tokenizer.py, shipped in model/tokenizer/)."""

from __future__ import annotations

from pathlib import Path

TOKENIZER_DIR = Path(__file__).parent / "tokenizer"


def load_tokenizer(folder: str | Path = TOKENIZER_DIR):
    """A transformers PreTrainedTokenizerFast from a folder (default: the shipped tokenizer)."""
    from transformers import AutoTokenizer  # imported here: transformers is slow to import

    return AutoTokenizer.from_pretrained(str(folder))
