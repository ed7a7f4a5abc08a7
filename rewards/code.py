"""Code execution reward: run a completion's program against tests in the sandbox.

``code_execution(completions, tests, **kwargs) -> list[float]``: the fraction of tests
passed. A sample's ``tests`` may be

- a string of assert-style test code: each top-level statement is one test, run after
  the program in the same interpreter;
- a list of such strings (one test each);
- stdin/stdout pairs: ``{"inputs": [...], "outputs": [...]}`` (APPS/TACO style) or a
  list of ``{"input": ..., "output": ...}``; outputs are compared line by line,
  trailing whitespace ignored. Each pair is a separate sandboxed run.

Every run is a :func:`rewards.sandbox.run_sandboxed` call made from a pool worker, so a
sample costs at most its wall limit and never the caller's thread.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from typing import Any, Callable, Sequence

from rewards.extract import completion_text
from rewards.pool import get_default_pool
from rewards.sandbox import SandboxLimits, run_sandboxed

__all__ = ["extract_program", "run_tests", "CodeExecution", "code_execution"]

_BLOCK_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.S)

# Runs the program, then each test; reports results on stdout behind a per-run nonce.
_HARNESS = """
import sys as _s
_n = {nonce!r}
_tests = {tests!r}
_src = {program!r}
_g = {{"__name__": "__main__"}}
try:
    exec(compile(_src, "solution.py", "exec"), _g)
except BaseException as _e:
    print("\\n" + _n + " PROGRAM " + type(_e).__name__, flush=True)
for _i, _t in enumerate(_tests):
    try:
        exec(compile(_t, "test.py", "exec"), _g)
        print("\\n" + _n + " PASS " + str(_i), flush=True)
    except BaseException as _e:
        print("\\n" + _n + " FAIL " + str(_i) + " " + type(_e).__name__, flush=True)
"""


def extract_program(text: str) -> str:
    """The last ```python (or untagged) code block of ``text``, else the whole text."""
    blocks = _BLOCK_RE.findall(text)
    python = [code for lang, code in blocks if lang.lower() in ("python", "py", "python3")]
    if python:
        return python[-1]
    untagged = [code for lang, code in blocks if not lang]
    return untagged[-1] if untagged else text


def _split_tests(tests: Any) -> tuple[list[str], list[tuple[str, str]]]:
    """``(assert_snippets, io_pairs)`` from any accepted test format."""
    if isinstance(tests, str):
        try:
            tests = json.loads(tests)  # a JSON-encoded column (common in datasets)
        except ValueError:
            try:
                return [ast.get_source_segment(tests, node) for node in ast.parse(tests).body], []
            except SyntaxError:
                return [tests], []
    if isinstance(tests, dict) and "inputs" in tests:
        return [], [(str(i), str(o)) for i, o in zip(tests["inputs"], tests["outputs"])]
    if isinstance(tests, (list, tuple)):
        asserts, pairs = [], []
        for t in tests:
            if isinstance(t, dict):
                pairs.append((str(t.get("input", "")), str(t.get("output", ""))))
            else:
                asserts.append(str(t))
        return asserts, pairs
    return [], []


def _same_output(got: str, want: str) -> bool:
    def lines(s: str) -> list[str]:
        return [line.rstrip() for line in s.strip().splitlines()]

    return lines(got) == lines(want)


def run_tests(program: str, tests: Any, limits: SandboxLimits = SandboxLimits()) -> dict:
    """Run ``program`` against ``tests`` in the sandbox.

    Args:
        program: Python source.
        tests: Any format accepted by :func:`code_execution`.
        limits: Limits for each sandboxed run.

    Returns:
        ``{"passed": int, "total": int, "reason": str}``; ``reason`` names the first
        failure (``"timeout"``, ``"memory"``, ``"wrong-answer"``, ``"AssertionError"``...).
    """
    asserts, pairs = _split_tests(tests)
    total = len(asserts) + len(pairs)
    if total == 0:
        return {"passed": 0, "total": 0, "reason": "no-tests"}
    passed, reasons = 0, []
    if asserts:
        nonce = secrets.token_hex(16)
        harness = _HARNESS.format(nonce=nonce, tests=asserts, program=program)
        result = run_sandboxed(harness, "", limits)
        marks = re.findall(rf"^{nonce} (PASS|FAIL|PROGRAM) ?(\d*) ?(\w*)", result.stdout, re.M)
        done = {int(i) for kind, i, _ in marks if kind == "PASS" and i}
        passed += len(done)
        failures = [name or kind for kind, _, name in marks if kind != "PASS"]
        if len(done) < len(asserts):
            reasons.append(result.reason or (failures[0] if failures else f"exit {result.returncode}"))
    for stdin, want in pairs:
        result = run_sandboxed(program, stdin, limits)
        if not result.reason and result.returncode == 0 and _same_output(result.stdout, want):
            passed += 1
        else:
            reasons.append(result.reason or (f"exit {result.returncode}" if result.returncode else "wrong-answer"))
    return {"passed": passed, "total": total, "reason": reasons[0] if reasons else ""}


class CodeExecution:
    """Reward = fraction of a sample's tests that its program passes.

    Args:
        limits: Sandbox limits for each run.
        sample_timeout: Hard wall limit for all runs of one sample together (pool).
    """

    __name__ = "code_execution"

    def __init__(self, limits: SandboxLimits = SandboxLimits(), sample_timeout: float = 60.0):
        self.limits = limits
        self.sample_timeout = sample_timeout

    def details(self, completions: Sequence[Any], tests: Sequence[Any] | None = None, **kwargs: Any) -> list[dict]:
        """Per-sample ``{"passed", "total", "reason"}``."""
        tests = list(tests) if tests is not None else [None] * len(completions)
        if len(tests) != len(completions):
            return [{"passed": 0, "total": 0, "reason": "error: tests column misaligned"} for _ in completions]
        args = [(extract_program(completion_text(c) or ""), t, self.limits) for c, t in zip(completions, tests)]
        results = get_default_pool().map(run_tests, args, timeout=self.sample_timeout, memory_mb=None)
        return [r.value if r.ok else {"passed": 0, "total": 0, "reason": r.reason} for r in results]

    def __call__(self, completions: Sequence[Any], tests: Sequence[Any] | None = None,
                 log_extra: Callable[[str, list], None] | None = None, **kwargs: Any) -> list[float | None]:
        """Score completions (TRL signature); None where a sample has no tests."""
        details = self.details(completions, tests)
        if log_extra is not None:
            log_extra("code_passed", [d["passed"] for d in details])
            log_extra("code_reason", [d["reason"] for d in details])
        return [None if d["reason"] == "no-tests" else (d["passed"] / d["total"] if d["total"] else 0.0)
                for d in details]


code_execution = CodeExecution()
