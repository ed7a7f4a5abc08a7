"""Multi-turn rollouts with tools: the policy writes until it closes a tool call, the call runs in the sandbox, its
output is appended as an observation, and the policy goes on, until it answers (end of text), runs out of turns or
of tokens. The call format and the runner are rewards/tools.py's.

Token in, token out: the policy's tokens go back to the engine exactly as it sampled them (they are decoded only
to find the call's program, never re-encoded), the observation is tokenized once and appended, and no chat
template is applied again between turns (the prompt was templated once, with the assistant turn open). So the
learner's input is exactly the prompt, the sampled ids and the observation ids (rl.batch.Sample.from_segments).

Every turn of every rollout still open goes to the engine as one call, and all of that turn's tool calls run in
the pool at once, so one slow program costs the batch its own time limit, not the sum.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from model import decode_completion
from model.vllm_engine import prompt_seed, sample
from rewards.tools import CALL_STOP, ToolRunner, check_tokenizer, find_call, observation_ids
from rl.batch import Sample, Segment


@dataclass(frozen=True)
class ToolSettings:
    """How rollouts use tools (the rollout section's tools, max_turns, tool_timeout_s, max_observation_tokens)."""

    tools: tuple[str, ...] = ("python",)
    max_turns: int = 4  # engine calls per rollout, the first included
    timeout_s: float = 5.0  # a call's wall-clock limit in the sandbox
    max_observation_tokens: int = 64  # an observation's tokens, fences included (longer output is cut)

    @classmethod
    def from_config(cls, rollout) -> "ToolSettings | None":
        """The settings of a rollout section (rl.config.RolloutConfig); None when it names no tools."""
        if not rollout.tools:
            return None
        return cls(tuple(rollout.tools), rollout.max_turns, rollout.tool_timeout_s, rollout.max_observation_tokens)

    def search_options(self) -> dict:
        """The options of a search (search.solve) whose policy calls these tools (search/tools.py)."""
        return {"tools": list(self.tools), "tool_timeout_s": self.timeout_s,
                "max_observation_tokens": self.max_observation_tokens}


def check_tool_tokenizer(rollout, tokenizer: Any, where: str = "the policy's tokenizer") -> None:
    """With rollout.tools set (rl.config.RolloutConfig), a ConfigError when the tokenizer cannot write the call
    format or rollout.max_observation_tokens leaves no room for output (rewards.tools.check_tokenizer)."""
    if rollout.tools:
        check_tokenizer(tokenizer, rollout.max_observation_tokens, where)


@dataclass
class _Rollout:
    """One rollout in progress."""

    prompt_ids: list[int]
    seed: int | None
    segments: list[Segment] = field(default_factory=list)
    finished: bool = False
    truncated: bool = False

    def token_ids(self) -> list[int]:
        return self.prompt_ids + [t for segment in self.segments for t in segment.token_ids]

    def completion_tokens(self) -> int:
        return sum(len(segment.token_ids) for segment in self.segments)

    def turn_ids(self) -> list[int]:
        """The policy's tokens since the last observation (the turn a call would close)."""
        ids: list[int] = []
        for segment in self.segments:
            ids = [] if segment.logprobs is None else ids + segment.token_ids
        return ids


@dataclass
class ToolRolloutStats:
    """What a request's tools cost: calls run, and the seconds the engine waited for them."""

    tool_calls: int = 0
    tool_seconds: float = 0.0
    engine_seconds: float = 0.0


def generate_with_tools(engine: Any, tokenizer: Any, runner: ToolRunner, prompts: list[list[int]], n: int,
                        max_tokens: int, seeds: list[int | None], settings: ToolSettings, temperature: float = 1.0,
                        top_p: float = 1.0, stats: ToolRolloutStats | None = None) -> list[Sample]:
    """n multi-turn rollouts of each prompt, prompt after prompt (sample i belongs to prompt i // n).

    Args:
        engine: a vllm.LLM (model.vllm_engine.make_engine).
        tokenizer: the policy's tokenizer (decodes a turn to find its call; encodes observations).
        runner: runs the calls (rewards.tools.ToolRunner).
        max_tokens: the completion's budget, policy and observation tokens together.
        seeds: one per prompt (None: unseeded); rollout k of prompt i draws turn t with prompt_seed(seed_i, t*n+k).
        stats: filled with the calls made and the time spent waiting for them, when given.

    Returns:
        Samples whose completions are the policy's turns with the observations between them (observation_spans);
        truncated when the token budget or max_turns ended a rollout before its end of text.
    """
    stats = stats if stats is not None else ToolRolloutStats()
    rollouts = [_Rollout(list(prompt), seed) for prompt, seed in zip(prompts, seeds) for _ in range(n)]
    for turn in range(settings.max_turns):
        active = [(k, r) for k, r in enumerate(rollouts) if not r.finished]
        if not active:
            break
        params = [dict(n=1, max_tokens=max_tokens - r.completion_tokens(), temperature=temperature, top_p=top_p,
                       stop=[CALL_STOP], seed=prompt_seed(r.seed, turn * n + k % n)) for k, r in active]
        started = time.perf_counter()
        completions = sample(engine, [r.token_ids() for _, r in active], params)
        stats.engine_seconds += time.perf_counter() - started
        calls: list[tuple[_Rollout, str]] = []
        for (_, rollout), (completion,) in zip(active, completions):
            if completion.token_ids:
                rollout.segments.append(Segment(completion.token_ids, completion.logprobs))
            if completion.finish_reason != "stop":  # end of text: answered; length: out of tokens
                rollout.finished, rollout.truncated = True, completion.finish_reason == "length"
                continue
            if rollout.completion_tokens() >= max_tokens:  # stopped at a fence with its last token
                rollout.finished = rollout.truncated = True
                continue
            program = find_call(decode_completion(tokenizer, rollout.turn_ids()))
            if program is None:
                continue  # a fence that closes no Python block: the turn goes on
            if turn == settings.max_turns - 1:  # no turn left to read the output in
                rollout.finished = rollout.truncated = True
                continue
            calls.append((rollout, program))
        started = time.perf_counter()
        outputs = runner.run([program for _, program in calls])
        stats.tool_seconds += time.perf_counter() - started
        stats.tool_calls += len(calls)
        for (rollout, _), output in zip(calls, outputs):
            observation = observation_ids(tokenizer, output, settings.max_observation_tokens)
            if rollout.completion_tokens() + len(observation) >= max_tokens:  # no room left to read it
                rollout.finished = rollout.truncated = True
            else:
                rollout.segments.append(Segment(observation, None))
    # still open after the last turn: its last turn stopped at a fence that closed no call, with no turn left
    return [Sample.from_segments(r.prompt_ids, r.segments, truncated=r.truncated or not r.finished)
            for r in rollouts]
