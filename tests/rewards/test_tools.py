"""The tool call format with our tokenizer, and calls run for real in the sandbox through the pool."""

import time

import pytest

from model import load_tokenizer
from model.config import ConfigError
from rewards.pool import TaskResult
from rewards.sandbox import RunResult, SandboxLimits
from rewards.tools import (CALL_OPEN, CALL_STOP, OUTPUT_CLOSE, OUTPUT_OPEN, TRUNCATED, ToolRunner, check_tokenizer,
                           check_tools, find_call, observation_ids, observation_text)


def test_a_call_is_the_python_block_the_stopping_fence_closes():
    assert find_call("Let me compute.\n```python\nprint(12 * 34)\n```\n") == "print(12 * 34)\n"
    assert find_call("x\n```python\na = 1\nprint(a)\n```\n\n") == "a = 1\nprint(a)\n"  # last token ran past the fence
    assert find_call("```python\nprint(1)\n```\n```output\n1\n```\nso\n```python\nprint(2)\n```\n") == "print(2)\n"
    assert find_call("A table:\n```\n") is None  # a fence that opens a block of no language closes no call
    assert find_call("```text\nhello\n```\n") is None
    assert find_call("no fence at all") is None
    assert find_call("```python\nprint(1)\n```\n```\n") is None  # the stop closes an empty block after the call


def test_our_tokenizer_writes_the_call_format_digit_by_digit():
    tokenizer = load_tokenizer()
    check_tokenizer(tokenizer, 64)
    for piece in (CALL_OPEN, CALL_STOP, OUTPUT_OPEN, OUTPUT_CLOSE):
        ids = tokenizer.encode(piece, add_special_tokens=False)
        assert tokenizer.decode(ids) == piece
        assert "`" * 3 in piece and ids.count(tokenizer.convert_tokens_to_ids("`")) == 3  # three single backticks
    digits = tokenizer.encode("56088", add_special_tokens=False)
    assert len(digits) == 5  # digits split: a number's output costs a token a digit


def test_a_tokenizer_that_cannot_write_a_fence_or_a_budget_without_room_is_refused():
    tokenizer = load_tokenizer()

    class NoBackticks:
        unk_token_id = 0

        def encode(self, text, add_special_tokens=False):
            return [0 if c == "`" else ord(c) for c in text]

        def decode(self, ids):
            return "".join("?" if i == 0 else chr(i) for i in ids)

    with pytest.raises(ConfigError, match=r"rollout.tools: .*cannot write the tool call format"):
        check_tokenizer(NoBackticks(), 64)
    with pytest.raises(ConfigError, match=r"rollout.max_observation_tokens: is 10"):
        check_tokenizer(tokenizer, 10)
    with pytest.raises(ConfigError, match=r"rollout.tools: unknown tool 'bash'"):
        check_tools(["python", "bash"])


def test_observation_text_says_what_the_run_did():
    limits = SandboxLimits(wall_s=2.0)
    ok = TaskResult(True, RunResult(0, "56088\n", ""))
    assert observation_text(ok, limits) == "56088"
    failed = TaskResult(True, RunResult(1, "partial\n", "Traceback (most recent call last):\n  File ...\n"
                                                        "ZeroDivisionError: division by zero\n"))
    assert observation_text(failed, limits) == "partial\nZeroDivisionError: division by zero"
    slow = TaskResult(True, RunResult(-9, "", "", reason="timeout"))
    assert observation_text(slow, limits) == "TimeoutError: the program ran past 2 s"
    assert observation_text(TaskResult(False, reason="crashed: exit -11"), limits) == \
        "Error: the tool did not answer (crashed: exit -11)"


def test_an_observation_is_cut_to_its_token_budget_fences_kept():
    tokenizer = load_tokenizer()

    def text(ids):
        return tokenizer.decode(ids)

    short = observation_ids(tokenizer, "42", 32)
    assert text(short) == OUTPUT_OPEN + "42" + OUTPUT_CLOSE
    long = observation_ids(tokenizer, "7" * 1000, 32)
    assert len(long) == 32
    assert text(long).startswith(OUTPUT_OPEN + "7777") and text(long).endswith(TRUNCATED + OUTPUT_CLOSE)
    huge = observation_ids(tokenizer, "x" * 10**7, 40)  # not tokenized whole
    assert len(huge) <= 40 and text(huge).endswith(TRUNCATED + OUTPUT_CLOSE)


def test_calls_run_in_the_sandbox_at_once_and_a_timeout_or_crash_is_an_output():
    runner = ToolRunner(timeout_s=2.0, num_workers=3)
    try:
        started = time.perf_counter()
        outputs = runner.run(["print(123456789 * 987654321)",
                              "while True:\n    pass",
                              "import os\nos.kill(os.getpid(), 9)",
                              "print(1/0)"])
        elapsed = time.perf_counter() - started
    finally:
        runner.shutdown()
    assert outputs[0] == str(123456789 * 987654321)
    assert outputs[1] == "TimeoutError: the program ran past 2 s"
    assert outputs[2] == "Error: the program was killed (signal 9)"
    assert outputs[3] == "ZeroDivisionError: division by zero"
    assert elapsed < 2 * 2.0 + 8  # the calls ran at once: one time limit, not the sum (plus pool start-up)


def test_the_cpu_limit_is_a_backstop_above_the_wall_clock_so_a_busy_loop_is_told_it_timed_out():
    # at equal limits the sandbox's wall-clock kill and RLIMIT_CPU raced on a busy loop, and the policy read either
    # "TimeoutError: ..." or "Error: cpu-limit" as the scheduler had it
    for timeout_s in (0.5, 2.0, 2.5, 30.0):
        limits = ToolRunner(timeout_s=timeout_s).limits
        assert limits.wall_s == timeout_s and limits.cpu_s >= timeout_s + 1
