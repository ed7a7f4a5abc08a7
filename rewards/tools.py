"""Tools a policy calls in the middle of its answer (tool-integrated reasoning): the call format, the tool runner
and what a call's output looks like to the policy.

The call format is a fenced Python block, which any tokenizer that can write backticks encodes:

    ```python
    print(123 * 456)
    ```
    ```output
    56088
    ```

The engine stops a turn at the closing fence (`CALL_STOP`); the block's program runs in the sandbox
(rewards/sandbox.py) through a grading pool (rewards/pool.py), with the code reward's limits; its standard output
and the last line of its standard error (the exception, for a program that failed) come back as the observation,
which is inserted after the call and never trained on. A program that runs past its time or crashes the pool
worker gives an observation saying so: a call never fails a rollout. The multi-turn loop that uses this is
rl/tool_rollout.py.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from typing import Any, Sequence

from model.config import ConfigError
from rewards.pool import GradingPool, TaskResult
from rewards.sandbox import RunResult, SandboxLimits, run_sandboxed

__all__ = ["TOOLS", "CALL_OPEN", "CALL_STOP", "OUTPUT_OPEN", "OUTPUT_CLOSE", "find_call", "observation_text",
           "observation_ids", "split_observations", "check_tools", "check_tokenizer", "ToolRunner"]

TOOLS = ("python",)  # the tools a policy may call, by the names rollout.tools takes
CALL_OPEN = "```python\n"  # opens a call
CALL_STOP = "\n```\n"  # closes one: the engine's stop string
OUTPUT_OPEN, OUTPUT_CLOSE = "```output\n", "\n```\n"  # around the tool's output
TRUNCATED = "\n[output truncated]"
# Characters of output kept before tokenizing: far more than any observation's token budget needs (a digit is a
# token in our tokenizer), so a program printing megabytes is not tokenized whole.
_CHARS_PER_TOKEN = 16


def find_call(text: str) -> str | None:
    """The program of the Python block that `text` (a policy turn the engine stopped at CALL_STOP) closes, or None
    when the fence it stopped at closes no Python block (a fence of another language: the turn just goes on)."""
    end = text.rfind(CALL_STOP)
    start = text.rfind("```python", 0, max(end, 0))
    if end < 0 or start < 0:
        return None
    block = text[start:end + 1]  # from the opening fence to the newline before the closing one
    newline = block.find("\n")
    program = block[newline + 1:]
    if newline < 0 or "```" in program:
        return None
    return program


def observation_text(result: TaskResult, limits: SandboxLimits) -> str:
    """What a call's run shows the policy: its standard output, then the last line of its standard error (a failed
    program's exception), then a line saying why it stopped when a limit stopped it."""
    if not result.ok:  # the pool worker itself timed out or crashed
        return f"Error: the tool did not answer ({result.reason})"
    run: RunResult = result.value
    text = run.stdout
    errors = [line for line in run.stderr.splitlines() if line.strip()]
    if errors:
        text += ("" if not text or text.endswith("\n") else "\n") + errors[-1]
    if run.reason == "timeout":
        text += f"\nTimeoutError: the program ran past {limits.wall_s:g} s"
    elif run.reason:
        text += f"\nError: {run.reason}"
    elif run.returncode is not None and run.returncode < 0:
        text += f"\nError: the program was killed (signal {-run.returncode})"
    return text.strip("\n")


def observation_ids(tokenizer: Any, text: str, max_tokens: int) -> list[int]:
    """The observation's token ids: OUTPUT_OPEN, the output (cut to fit, with TRUNCATED after it) and
    OUTPUT_CLOSE, each tokenized once, at most max_tokens in all."""
    def encode(piece: str) -> list[int]:
        return list(tokenizer.encode(piece, add_special_tokens=False))

    head, tail = encode(OUTPUT_OPEN), encode(OUTPUT_CLOSE)
    body = encode(text[:max_tokens * _CHARS_PER_TOKEN])
    room = max_tokens - len(head) - len(tail)
    if len(body) > room or len(text) > max_tokens * _CHARS_PER_TOKEN:
        marker = encode(TRUNCATED)
        body = body[:max(room - len(marker), 0)] + marker
    return head + body + tail


_OUTPUT_BLOCK = re.compile(re.escape(CALL_STOP + OUTPUT_OPEN) + r"(.*?)" + re.escape(OUTPUT_CLOSE), re.S)


def split_observations(text: str) -> list[tuple[str, bool]]:
    """A written solution (an SFT trace) cut into the policy's text and the tools' outputs, in order: (piece,
    True) is the output of the call just before it, as an observation would bring it (the body of the ```output
    block that follows a call's closing fence); (piece, False) is the policy's, fences included."""
    pieces: list[tuple[str, bool]] = []
    start = 0
    for match in _OUTPUT_BLOCK.finditer(text):
        pieces += [(text[start:match.start() + len(CALL_STOP)], False), (match.group(1), True)]
        start = match.end()
    return [piece for piece in pieces + [(text[start:], False)] if piece[0] or piece[1]]


def check_tools(names: Sequence[str], field: str = "rollout.tools") -> None:
    """A ConfigError naming `field` for a tool name that does not exist."""
    unknown = [name for name in names if name not in TOOLS]
    if unknown:
        raise ConfigError(f"{field}: unknown tool {unknown[0]!r}; tools: {', '.join(TOOLS)}")


def check_tokenizer(tokenizer: Any, max_observation_tokens: int, where: str = "the policy's tokenizer") -> None:
    """A ConfigError when the tokenizer cannot write the call format (each fixed piece must encode without an
    unknown token and decode back to itself), or when max_observation_tokens leaves no room for any output."""
    unknown = getattr(tokenizer, "unk_token_id", None)
    for piece in (CALL_OPEN, CALL_STOP, OUTPUT_OPEN, OUTPUT_CLOSE, TRUNCATED, "print(12 * 34)"):
        ids = tokenizer.encode(piece, add_special_tokens=False)
        if (unknown is not None and unknown in ids) or tokenizer.decode(ids) != piece:
            raise ConfigError(f"rollout.tools: {where} cannot write the tool call format: {piece!r} does not "
                              f"encode and decode back to itself (it decodes to {tokenizer.decode(ids)!r})")
    fixed = sum(len(tokenizer.encode(piece, add_special_tokens=False))
                for piece in (OUTPUT_OPEN, OUTPUT_CLOSE, TRUNCATED))
    if max_observation_tokens <= fixed:
        raise ConfigError(f"rollout.max_observation_tokens: is {max_observation_tokens}, but the output's fences and "
                          f"truncation marker take {fixed} tokens; give it more than {fixed}")


class ToolRunner:
    """Runs calls in the sandbox, all of a turn's calls at once, each with the code reward's limits except the wall
    time (`timeout_s`), through a pool of its own (made on first use, in the process that runs calls).

    Args:
        timeout_s: a program's wall-clock limit. Its CPU-time limit is a backstop one second above it, rounded up:
            a single-threaded busy loop is then always stopped by the wall clock and told it ran past `timeout_s`
            (at an equal limit the two kills raced, and which one the policy read was up to the scheduler).
        num_workers: pool processes, i.e. calls running at once (default: the CPUs, at most 8).
    """

    def __init__(self, timeout_s: float = 5.0, num_workers: int | None = None):
        self.limits = dataclasses.replace(SandboxLimits(), wall_s=timeout_s, cpu_s=math.ceil(timeout_s) + 1)
        self.num_workers = num_workers or min(8, os.cpu_count() or 1)
        self.pool: GradingPool | None = None

    def run(self, programs: Sequence[str]) -> list[str]:
        """Each program's observation text (observation_text), in order; never raises."""
        if not programs:
            return []
        if self.pool is None:
            # The sandbox needs no sympy or math-verify: the pool preloads only itself.
            self.pool = GradingPool(num_workers=self.num_workers, preload=("rewards.sandbox",))
        # the pool's own limit backs the sandbox's up: a pool worker that hangs is killed, and the call says so
        futures = [self.pool.submit(run_sandboxed, program, "", self.limits, timeout=self.limits.wall_s + 10,
                                    memory_mb=None) for program in programs]
        return [observation_text(future.result(), self.limits) for future in futures]

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
