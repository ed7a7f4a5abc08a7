"""A local vLLM engine as search's StepGenerator: k samples continuing a token prefix, each stopping at the step
delimiter (kept in the output, so prefix + output is exactly what the engine saw), at end of text, or at the token
limit; and `load_generator`, a checkpoint folder's engine and tokenizer started once and reused."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

from model import decode_completion, load_tokenizer
from model.checkpoint import check_checkpoint
from model.vllm_engine import make_engine
from search.batching import GenerationRequest
from search.generator import Continuation

__all__ = ["VllmStepGenerator", "load_generator"]


class VllmStepGenerator:
    """Wraps a `vllm.LLM` (model.vllm_engine.make_engine) and its tokenizer."""

    def __init__(self, engine: Any, tokenizer: Any):
        self.engine, self.tokenizer = engine, tokenizer

    def continue_prefix(self, prefix_ids: list[int], k: int, *, max_tokens: int, temperature: float,
                        stop: Sequence[str], seed: int | None) -> list[Continuation]:
        return self.continue_prefixes([prefix_ids], k, max_tokens=max_tokens, temperature=temperature, stop=stop,
                                      seeds=[seed])[0]

    def continue_prefixes(self, prefixes: list[list[int]], k: int, *, max_tokens: int, temperature: float,
                          stop: Sequence[str], seeds: Sequence[int | None]) -> list[list[Continuation]]:
        """k continuations of each prefix, all in one engine call (prefix i sampled with seeds[i])."""
        return self.continue_requests([GenerationRequest(list(p), k, max_tokens, temperature, tuple(stop), seed)
                                       for p, seed in zip(prefixes, seeds, strict=True)])

    def continue_requests(self, requests: Sequence[GenerationRequest]) -> list[list[Continuation]]:
        """Each request's continuations, all in one engine call, each request with its own sampling settings
        (search.batching merges concurrent searches' calls into one of these)."""
        # lazy: importing vLLM fixes its log level and reads its environment, which make_engine sets first
        from vllm import SamplingParams

        params = [SamplingParams(n=r.k, max_tokens=r.max_tokens, temperature=r.temperature, seed=r.seed, logprobs=0,
                                 stop=list(r.stop) or None, include_stop_str_in_output=True) for r in requests]
        results = self.engine.generate([{"prompt_token_ids": list(r.prefix_ids)} for r in requests], params,
                                       use_tqdm=False)
        out = []
        for result in results:
            continuations = []
            for output in sorted(result.outputs, key=lambda o: o.index):
                tokens = list(output.token_ids)
                logprob = sum(step[t].logprob for step, t in zip(output.logprobs or [], tokens))
                # finish_reason "stop" is either a stop string (stop_reason holds it) or the end-of-text token
                reason = ("length" if output.finish_reason == "length" else
                          "step" if isinstance(output.stop_reason, str) else "eos")
                continuations.append(Continuation(tokens, decode_completion(self.tokenizer, tokens), logprob, reason))
            out.append(continuations)
        return out

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        return decode_completion(self.tokenizer, ids)


def load_generator(model: str | Path) -> VllmStepGenerator:
    """The StepGenerator serving a checkpoint folder with the project's engine settings (`make_engine`'s defaults):
    started on the first call for that folder (15-45 s on CPU) and the same object on every later call.

    Raises:
        ConfigError: the folder is missing, a file or damaged (before vLLM starts).
    """
    return _load_generator(str(Path(model).resolve()))


@functools.cache  # one engine per folder, for the life of the process (a vLLM engine is not cheaply freed)
def _load_generator(folder: str) -> VllmStepGenerator:
    check_checkpoint(folder)
    return VllmStepGenerator(make_engine(folder), load_tokenizer(folder))
