"""Search with tools: a StepGenerator that lets the policy run Python (rewards/tools.py's call format) as it writes.

`ToolStepGenerator` wraps any generator that has a tokenizer (search/vllm_generator.py's). A sampled step that
closes a ```python block is a tool turn: the program runs in the sandbox and its output, tokenized once as an
observation, is appended to that step, so the node holds the call and what it printed and the steps after it read
both. A whole-solution sample (rollouts, self-consistency) stops at each call, takes its output and goes on, up
to `max_turns` calls. The output's tokens are inserted, not generated: `Continuation.inserted_tokens` keeps them
out of the policy tokens a budget counts; the engine reads them as prefill in the next call. Nor are they the
policy's words: `Continuation.policy_text` leaves them out, and answers and verdicts read only that, so an answer
that only a tool printed is never taken.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from model.vllm_engine import prompt_seed
from rewards.tools import CALL_STOP, ToolRunner, check_tools, find_call, observation_ids
from search.generator import Continuation, GenerationRequest, RequestGenerator, continue_each

__all__ = ["ToolStepGenerator"]


class ToolStepGenerator(RequestGenerator):
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

    def continue_requests(self, requests: Sequence[GenerationRequest]) -> list[list[Continuation]]:
        """Each request's continuations as the wrapped generator samples them (one engine call for all), each call's
        output appended to the step that made it; a whole-solution sample (a request with no stop string) goes on
        after each call, all samples still going in one engine call a turn. Sample j of a request draws its turn t
        with prompt_seed(seed, t * k + j), so it does not depend on the requests it was batched with."""
        first = [dataclasses.replace(r, stop=r.stop or (CALL_STOP,)) for r in requests]  # a whole sample: to a call
        results = continue_each(self.generator, first)
        samples = [(r, j, c) for r, continuations in zip(requests, results) for j, c in enumerate(continuations)]
        self._run_calls(samples)
        for turn in range(1, self.max_turns + 1):
            going_on = [(r, j, c) for r, j, c in samples
                        if not r.stop and c.stop_reason == "step" and c.num_tokens < r.max_tokens]
            if not going_on:
                break
            more = continue_each(self.generator, [
                GenerationRequest(r.prefix_ids + c.token_ids, 1, r.max_tokens, r.temperature, (CALL_STOP,),
                                  prompt_seed(r.seed, turn * r.k + j)) for r, j, c in going_on])
            for (r, _, c), (extra,) in zip(going_on, more):
                c.prefill_tokens += len(r.prefix_ids) + len(c.token_ids)
                extra_ids = extra.token_ids[:r.max_tokens - c.num_tokens]  # the policy's budget for the whole sample
                c.token_ids += extra_ids
                written = self.generator.decode(extra_ids)
                c.text, c.policy_text = c.text + written, c.own_text() + written
                c.logprob += extra.logprob
                c.stop_reason = extra.stop_reason if len(extra_ids) == len(extra.token_ids) else "length"
            self._run_calls(going_on)
        for r, _, c in samples:  # a whole sample stopped at a call after its last turn: unfinished
            if not r.stop and c.stop_reason == "step":
                c.stop_reason = "length"
        return results

    def _run_calls(self, samples: list[tuple[GenerationRequest, int, Continuation]]) -> None:
        """Run every call a sample's last step closed (all at once) and append each output to its sample."""
        calls = []
        for request, _, c in samples:
            text = self.generator.decode(request.prefix_ids + c.token_ids)
            program = find_call(text) if c.stop_reason == "step" and text.endswith(CALL_STOP) else None
            if program is not None:
                calls.append((c, program))
        for (c, _), output in zip(calls, self.runner.run([program for _, program in calls])):
            observation = observation_ids(self.tokenizer, output, self.max_observation_tokens)
            c.token_ids = c.token_ids + observation
            c.text, c.policy_text = c.text + self.generator.decode(observation), c.own_text()
            c.inserted_tokens += len(observation)
            c.tool_calls += 1

    def shutdown(self) -> None:
        self.runner.shutdown()
