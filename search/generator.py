"""What search needs from a policy engine, and the token accounting that lets methods compare at equal compute.

Search asks an engine one thing: continue a token prefix with k samples, each stopping at the end of a reasoning
step (`STEP_DELIMITER`), at the end of text, or at a token limit, and say how it stopped and how likely the sampled
tokens were. A local vLLM engine meets the protocol with `SamplingParams(n=k, stop=stop, max_tokens=...,
temperature=..., seed=..., logprobs=0, include_stop_str_in_output=True)` (search/vllm_generator.py); rl's rollout
workers run their searches next to their own engine that way.

Compute is counted in three kinds that never mix: tokens the policy generated (the budget), prompt tokens sent to
the policy for prefill, and tokens a reward model read. Sibling expansions and rollouts share prefixes, so the
counter also reports how many prefill tokens a prefix cache would have held already; on CPU, MLA turns vLLM's
prefix caching off, so there it is what caching *would* save.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence

__all__ = ["STEP_DELIMITER", "Continuation", "GenerationRequest", "RequestGenerator", "StepGenerator", "TokenCounter",
           "continue_each", "continue_many", "split_steps"]

# Our policies write one reasoning step per line inside <think>...</think> and end "The answer is \boxed{N}."
STEP_DELIMITER = "\n"

StopReason = Literal["step", "eos", "length"]


@dataclass
class Continuation:
    """One sampled continuation of a prefix.

    A continuation that stopped at a stop string keeps it in `token_ids` and `text` (vLLM's
    include_stop_str_in_output=True), so that prefix + token_ids is exactly what the engine has seen and the next
    step can continue from it without re-tokenizing.
    """

    token_ids: list[int]
    text: str
    logprob: float  # sum of the sampled tokens' logprobs
    stop_reason: StopReason  # "step": hit a stop string; "eos": end of text; "length": hit max_tokens
    inserted_tokens: int = 0  # of token_ids, those a tool's output put there (search/tools.py), not the policy
    prefill_tokens: int = 0  # prompt tokens of the further engine calls that made it (a whole sample that went on
    #                          after a tool call), beyond the call that started it
    policy_text: str | None = None  # `text` less the tools' outputs in it (search/tools.py); None: all the policy's
    tool_calls: int = 0  # the tool calls run in it, each one output inserted (search/tools.py)

    def own_text(self) -> str:
        """The text the policy wrote: what answers are read from and verdicts given on, so that no answer is taken
        that only a tool printed."""
        return self.text if self.policy_text is None else self.policy_text

    @property
    def num_tokens(self) -> int:
        """The tokens the policy generated (what budgets count; a tool's output is prefill for the next call)."""
        return len(self.token_ids) - self.inserted_tokens


class StepGenerator(Protocol):
    """A policy engine as search sees it."""

    def continue_prefix(self, prefix_ids: list[int], k: int, *, max_tokens: int, temperature: float,
                        stop: Sequence[str], seed: int | None) -> list[Continuation]:
        """k samples continuing `prefix_ids` (one prefill shared by the k, as vLLM's n=k does). `stop=[]` samples
        to the end of text; temperature 0 is greedy."""
        ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclass(frozen=True)
class GenerationRequest:
    """One `continue_prefix` call's arguments."""

    prefix_ids: list[int]
    k: int
    max_tokens: int
    temperature: float
    stop: tuple[str, ...]
    seed: int | None


class RequestGenerator:
    """A StepGenerator made of one method, `continue_requests` (many prefixes, each with its own sampling settings,
    in one engine call): the one-prefix and same-settings calls are its special cases. Subclasses add `encode` and
    `decode`."""

    def continue_requests(self, requests: Sequence[GenerationRequest]) -> list[list[Continuation]]:
        raise NotImplementedError

    def continue_prefix(self, prefix_ids: list[int], k: int, *, max_tokens: int, temperature: float,
                        stop: Sequence[str], seed: int | None) -> list[Continuation]:
        return self.continue_prefixes([prefix_ids], k, max_tokens=max_tokens, temperature=temperature, stop=stop,
                                      seeds=[seed])[0]

    def continue_prefixes(self, prefixes: list[list[int]], k: int, *, max_tokens: int, temperature: float,
                          stop: Sequence[str], seeds: Sequence[int | None]) -> list[list[Continuation]]:
        """k continuations of each prefix, all in one engine call (prefix i sampled with seeds[i])."""
        return self.continue_requests([GenerationRequest(list(p), k, max_tokens, temperature, tuple(stop), seed)
                                       for p, seed in zip(prefixes, seeds, strict=True)])


def continue_each(generator: StepGenerator, requests: Sequence[GenerationRequest]) -> list[list[Continuation]]:
    """Each request's continuations: in one engine call when the generator offers `continue_requests`, else one
    `continue_prefix` call per request."""
    many = getattr(generator, "continue_requests", None)
    if many is not None:
        return many(list(requests))
    return [generator.continue_prefix(r.prefix_ids, r.k, max_tokens=r.max_tokens, temperature=r.temperature,
                                      stop=list(r.stop), seed=r.seed) for r in requests]


def continue_many(generator: StepGenerator, prefixes: Sequence[list[int]], k: int, *, max_tokens: int,
                  temperature: float, stop: Sequence[str], seeds: Sequence[int | None]) -> list[list[Continuation]]:
    """k continuations of each prefix: in one engine call when the generator offers `continue_prefixes` (a vLLM
    engine then batches every prefix), else one `continue_prefix` call per prefix."""
    batched = getattr(generator, "continue_prefixes", None)
    if batched is not None:
        return batched(list(prefixes), k, max_tokens=max_tokens, temperature=temperature, stop=stop, seeds=seeds)
    return [generator.continue_prefix(prefix, k, max_tokens=max_tokens, temperature=temperature, stop=stop, seed=seed)
            for prefix, seed in zip(prefixes, seeds, strict=True)]


def split_steps(text: str, delimiter: str = STEP_DELIMITER) -> list[str]:
    """A solution's steps, each keeping its delimiter, so that `"".join(split_steps(text)) == text`."""
    return [step for step in re.split(f"(?<={re.escape(delimiter)})", text) if step]


@dataclass
class TokenCounter:
    """Compute spent on one problem, by kind.

    `prefill_cached` is the part of `prefill` that an exact token-level prefix cache would have held from earlier
    calls (vLLM caches whole blocks, 16 tokens on CPU, so its real saving is a little lower).
    """

    policy: int = 0  # tokens the policy generated: what budgets count
    prefill: int = 0  # prompt tokens sent to the policy, once per call (the k samples of a call share them)
    prefill_cached: int = 0  # of those, tokens already seen as a prefix of an earlier call's prompt + output
    reward: int = 0  # tokens reward models read
    policy_calls: int = 0
    reward_calls: int = 0
    _seen: dict = field(default_factory=dict, repr=False)  # a trie of every token sequence the engine has held

    def record_generation(self, prefix_ids: Sequence[int], continuations: Sequence[Continuation]) -> None:
        self.policy_calls += 1
        self.prefill += len(prefix_ids) + sum(c.prefill_tokens for c in continuations)
        self.prefill_cached += self._cached_length(prefix_ids)
        self.policy += sum(c.num_tokens for c in continuations)
        for c in continuations:
            self._remember([*prefix_ids, *c.token_ids])

    def record_reward(self, num_tokens: int) -> None:
        self.reward_calls += 1
        self.reward += num_tokens

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in
                ("policy", "prefill", "prefill_cached", "reward", "policy_calls", "reward_calls")}

    def _cached_length(self, ids: Sequence[int]) -> int:
        node, length = self._seen, 0
        for token in ids:
            if token not in node:
                break
            node, length = node[token], length + 1
        return length

    def _remember(self, ids: Sequence[int]) -> None:
        node = self._seen
        for token in ids:
            node = node.setdefault(token, {})
