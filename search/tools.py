"""Search with tools: a StepGenerator that lets the policy run Python (rewards/tools.py's call format) as it writes.

`ToolStepGenerator` wraps any generator that has a tokenizer (search/vllm_generator.py's). A sampled step that
closes a ```python block is a tool turn: the program runs in the sandbox and its output, tokenized once as an
observation, is appended to that step, so the node holds the call and what it printed and the steps after it read
both. A whole-solution sample (rollouts, self-consistency) stops at each call, takes its output and goes on, up
to `max_turns` calls. The output's tokens are inserted, not generated: `Continuation.inserted_tokens` keeps them
out of the policy tokens a budget counts; the engine reads them as prefill in the next call.
"""

from __future__ import annotations

from typing import Sequence

from model.vllm_engine import prompt_seed
from rewards.tools import CALL_STOP, ToolRunner, check_tools, find_call, observation_ids
from search.generator import Continuation, continue_many

__all__ = ["ToolStepGenerator"]


class ToolStepGenerator:
    """A StepGenerator whose policy may call tools (search.solve(..., tools=["python"])).

    Args:
        generator: the engine (a StepGenerator with a `tokenizer`, as VllmStepGenerator has).
        tools: tool names (rewards.tools.TOOLS).
        timeout_s: a call's wall-clock limit in the sandbox.
        max_observation_tokens: an output's tokens, fences included (longer output is cut).
        max_turns: calls a whole-solution sample may make.
    """

    def __init__(self, generator, tools: Sequence[str] = ("python",), timeout_s: float = 5.0,
                 max_observation_tokens: int = 64, max_turns: int = 4):
        check_tools(tools, "tools")
        self.generator, self.tokenizer = generator, generator.tokenizer
        self.runner = ToolRunner(timeout_s)
        self.max_observation_tokens, self.max_turns = max_observation_tokens, max_turns

    def encode(self, text: str) -> list[int]:
        return self.generator.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.generator.decode(ids)

    def continue_prefix(self, prefix_ids: list[int], k: int, *, max_tokens: int, temperature: float,
                        stop: Sequence[str], seed: int | None) -> list[Continuation]:
        return self.continue_prefixes([prefix_ids], k, max_tokens=max_tokens, temperature=temperature, stop=stop,
                                      seeds=[seed])[0]

    def continue_prefixes(self, prefixes: list[list[int]], k: int, *, max_tokens: int, temperature: float,
                          stop: Sequence[str], seeds: Sequence[int | None]) -> list[list[Continuation]]:
        """k continuations of each prefix, as the wrapped generator samples them, each call's output appended to the
        step that made it; a whole-solution sample (`stop` empty) goes on after each call."""
        whole = not stop
        results = continue_many(self.generator, prefixes, k, max_tokens=max_tokens, temperature=temperature,
                                stop=[CALL_STOP] if whole else stop, seeds=seeds)
        samples = [(prefix, c) for prefix, continuations in zip(prefixes, results) for c in continuations]
        self._run_calls(samples)
        for turn in range(1, self.max_turns + 1 if whole else 1):
            going_on = [(prefix, c) for prefix, c in samples if c.stop_reason == "step"
                        and c.num_tokens < max_tokens]
            if not going_on:
                break
            more = continue_many(self.generator, [prefix + c.token_ids for prefix, c in going_on], 1,
                                 max_tokens=max_tokens, temperature=temperature, stop=[CALL_STOP],
                                 seeds=[prompt_seed(seeds[0], turn * len(samples) + i) for i in range(len(going_on))])
            for (prefix, c), (extra,) in zip(going_on, more):
                c.prefill_tokens += len(prefix) + len(c.token_ids)
                extra_ids = extra.token_ids[:max_tokens - c.num_tokens]  # the policy's budget for the whole sample
                c.token_ids += extra_ids
                c.text += self.generator.decode(extra_ids)
                c.logprob += extra.logprob
                c.stop_reason = extra.stop_reason if len(extra_ids) == len(extra.token_ids) else "length"
            self._run_calls(going_on)
        if whole:
            for _, c in samples:  # stopped at a call after its last turn: unfinished
                c.stop_reason = "length" if c.stop_reason == "step" else c.stop_reason
        return results

    def _run_calls(self, samples: list[tuple[list[int], Continuation]]) -> None:
        """Run every call a sample's last step closed (all at once) and append each output to its sample."""
        calls = []
        for prefix, c in samples:
            text = self.generator.decode(prefix + c.token_ids)
            program = find_call(text) if c.stop_reason == "step" and text.endswith(CALL_STOP) else None
            if program is not None:
                calls.append((c, program))
        for (c, _), output in zip(calls, self.runner.run([program for _, program in calls])):
            observation = observation_ids(self.tokenizer, output, self.max_observation_tokens)
            c.token_ids = c.token_ids + observation
            c.text += self.generator.decode(observation)
            c.inserted_tokens += len(observation)

    def shutdown(self) -> None:
        self.runner.shutdown()
