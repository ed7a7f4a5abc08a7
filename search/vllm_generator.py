"""A local vLLM engine as search's StepGenerator: k samples continuing a token prefix, each stopping at the step
delimiter (kept in the output, so prefix + output is exactly what the engine saw), at end of text, or at the token
limit; and `load_generator`, a checkpoint folder's engine and tokenizer started once and reused."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

from model import decode_completion, load_tokenizer
from model.checkpoint import check_checkpoint
from model.vllm_engine import make_engine, sample
from search.generator import Continuation, GenerationRequest, RequestGenerator

__all__ = ["VllmStepGenerator", "load_generator"]

# The engine's finish reasons in search's words: a stop string is the step delimiter.
STOP_REASONS = {"length": "length", "stop": "step", "eos": "eos"}


class VllmStepGenerator(RequestGenerator):
    """Wraps a `vllm.LLM` (model.vllm_engine.make_engine) and its tokenizer."""

    def __init__(self, engine: Any, tokenizer: Any):
        self.engine, self.tokenizer = engine, tokenizer

    def continue_requests(self, requests: Sequence[GenerationRequest]) -> list[list[Continuation]]:
        """Each request's continuations, all in one engine call, each request with its own sampling settings
        (search.batching merges concurrent searches' calls into one of these)."""
        params = [dict(n=r.k, max_tokens=r.max_tokens, temperature=r.temperature, seed=r.seed,
                       stop=list(r.stop) or None, include_stop_str_in_output=True) for r in requests]
        completions = sample(self.engine, [r.prefix_ids for r in requests], params)
        return [[Continuation(c.token_ids, decode_completion(self.tokenizer, c.token_ids), sum(c.logprobs),
                              STOP_REASONS[c.finish_reason]) for c in request_completions]
                for request_completions in completions]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return decode_completion(self.tokenizer, ids)


def load_generator(model: str | Path, speculative_tokens: int = 0) -> VllmStepGenerator:
    """The StepGenerator serving a checkpoint folder with the project's engine settings (`make_engine`'s defaults,
    with `speculative_tokens` drafted a step by its MTP layers): started on the first call for that folder and
    setting (15-45 s on CPU) and the same object on every later call.

    Raises:
        ConfigError: the folder is missing, a file or damaged (before vLLM starts).
    """
    return _load_generator(str(Path(model).resolve()), speculative_tokens)


@functools.cache  # one engine per folder, for the life of the process (a vLLM engine is not cheaply freed)
def _load_generator(folder: str, speculative_tokens: int) -> VllmStepGenerator:
    check_checkpoint(folder)
    return VllmStepGenerator(make_engine(folder, speculative_tokens=speculative_tokens), load_tokenizer(folder))
