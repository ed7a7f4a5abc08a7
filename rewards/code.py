"""Code execution reward: run a completion's program against tests in the sandbox.

`code_execution(completions, tests, **kwargs) -> list[float | None]`: the fraction of tests
passed. A sample's `tests` may be

- a string of assert-style test code, run after the program in the same interpreter, one
  top-level statement at a time: each statement that checks something (an `assert`, a
  block containing one, or a call such as `check(candidate)`) is one test; the others
  (imports, definitions, assignments) are setup that runs in order but is not counted, so
  that a program is never paid for a test harness that checks nothing;
- a list of such strings (one test each, with the same rule);
- stdin/stdout pairs: `{"inputs": [...], "outputs": [...]}` (APPS/TACO style) or a
  list of `{"input": ..., "output": ...}`; outputs are compared line by line,
  trailing whitespace ignored. Each pair is a separate sandboxed run.

What a sample scores: `None` (not applicable) when its `tests` is None or holds no test
(an empty list, `{"inputs": [], "outputs": []}`, code that checks nothing), with reason
`no-tests...`; `0.0` with a reason `tests: ...` when its `tests` is malformed
(2 inputs but 1 output, a pair without an output, call-based `fn_name` tests, a value of
another type): nothing is run, since a malformed spec could only pay for nothing.

Every run is a `rewards.sandbox.run_sandboxed` call made from a pool worker, so a
sample costs at most its wall limit and never the caller's thread.
"""

from __future__ import annotations

import ast
import json
import re
import secrets
from typing import Any, Callable, Sequence

from rewards.calls import check_call
from rewards.extract import completion_text
from rewards.pool import get_default_pool
from rewards.sandbox import SandboxLimits, run_sandboxed

__all__ = ["extract_program", "run_tests", "CodeExecution", "code_execution"]

_BLOCK_RE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.S)

# Runs the program, then each snippet (a test, or setup when its flag is False); reports each test's result on
# stdout behind a per-run nonce.
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
for _i, (_t, _check) in enumerate(_tests):
    try:
        exec(compile(_t, "test.py", "exec"), _g)
        if _check:
            print("\\n" + _n + " PASS " + str(_i), flush=True)
    except BaseException as _e:
        print("\\n" + _n + (" FAIL " if _check else " SETUP ") + str(_i) + " " + type(_e).__name__, flush=True)
"""


def extract_program(text: str) -> str:
    """The program of a completion.

    Args:
        text: The completion text.

    Returns:
        The last python (or untagged) fenced code block of `text`, else the whole text.
    """
    blocks = _BLOCK_RE.findall(text)
    python = [code for lang, code in blocks if lang.lower() in ("python", "py", "python3")]
    if python:
        return python[-1]
    untagged = [code for lang, code in blocks if not lang]
    return untagged[-1] if untagged else text


class _MalformedTests(ValueError):
    """A sample's `tests` value is not a test spec this reward can run; the message is the reason."""


def _checks(node: ast.AST) -> bool:
    """Whether a statement checks something: an assert, or a call made as a statement (`check(f)`), at any
    depth except inside a function or class definition (defining a checker checks nothing)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
        return False
    if isinstance(node, ast.Assert) or (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return True
    return any(_checks(child) for child in ast.iter_child_nodes(node))


def _snippets(code: str) -> list[tuple[str, bool]]:
    """Assert-style test code as `(statement source, is_test)` in order; code that does not parse is one test
    (it fails, as it would for every program)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return [(code, True)]
    return [(ast.get_source_segment(code, node) or "", _checks(node)) for node in tree.body]


def _what(value: Any) -> str:
    return "None" if value is None else f"of type {type(value).__name__}"


def _text(value: Any, what: str) -> str:
    """An input or output as text: a string, a number, or a list of lines."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    raise _MalformedTests(f"tests: {what} is {_what(value)}")


def _split_tests(tests: Any) -> tuple[list[tuple[str, bool]], list[tuple[str, str]]]:
    """`(snippets, io_pairs)` from any accepted test format; `snippets` are `(source, is_test)`.

    Raises:
        _MalformedTests: for a value that is no test spec (mismatched inputs and outputs, a pair without an
            output, call-based tests, another type); the message is the sample's reason.
    """
    if isinstance(tests, str):
        try:
            decoded = json.loads(tests)  # a JSON-encoded column (common in datasets)
        except ValueError:
            decoded = None
        if isinstance(decoded, (dict, list)):
            tests = decoded
        else:  # test code ("assert f(1) == 2" is no JSON; "1" is, and is code that checks nothing)
            return _snippets(decoded if isinstance(decoded, str) else tests), []
    if isinstance(tests, dict):
        if "fn_name" in tests:
            raise _MalformedTests("tests: call-based tests (fn_name) are not supported")
        if "inputs" in tests or "outputs" in tests:
            inputs, outputs = tests.get("inputs"), tests.get("outputs")
            if not isinstance(inputs, (list, tuple)) or not isinstance(outputs, (list, tuple)):
                missing = "inputs" if not isinstance(inputs, (list, tuple)) else "outputs"
                raise _MalformedTests(f"tests: {missing} is not a list")
            if len(inputs) != len(outputs):
                raise _MalformedTests(f"tests: {len(inputs)} inputs but {len(outputs)} outputs")
            return [], [(_text(i, "an input"), _text(o, "an output")) for i, o in zip(inputs, outputs)]
        tests = [tests]  # one {"input": ..., "output": ...} pair
    if isinstance(tests, (list, tuple)):
        snippets, pairs = [], []
        for n, t in enumerate(tests):
            if isinstance(t, dict):
                if "output" not in t:
                    raise _MalformedTests(f"tests: pair {n} has no output")
                pairs.append((_text(t.get("input", ""), "an input"), _text(t["output"], "an output")))
            elif isinstance(t, str):
                snippet = _snippets(t)
                snippets.append((t, any(check for _, check in snippet)))
            else:
                raise _MalformedTests(f"tests: item {n} is {_what(t)}")
        return snippets, pairs
    raise _MalformedTests(f"tests: a value {_what(tests)} is no test spec")


def _same_output(got: str, want: str) -> bool:
    def lines(s: str) -> list[str]:
        return [line.rstrip() for line in s.strip().splitlines()]

    return lines(got) == lines(want)


def run_tests(program: str, tests: Any, limits: SandboxLimits = SandboxLimits()) -> dict:
    """Run `program` against `tests` in the sandbox.

    Args:
        program: Python source.
        tests: Any format accepted by `code_execution`.
        limits: Limits for each sandboxed run.

    Returns:
        `{"passed": int, "total": int, "reason": str}`; `reason` names the first
        failure (`"timeout"`, `"memory"`, `"wrong-answer"`, `"AssertionError"`...).
    """
    if tests is None:
        return {"passed": 0, "total": 0, "reason": "no-tests"}
    try:
        snippets, pairs = _split_tests(tests)
    except _MalformedTests as malformed:
        return {"passed": 0, "total": 0, "reason": str(malformed)}
    checks = [i for i, (_, check) in enumerate(snippets) if check]
    total = len(checks) + len(pairs)
    if total == 0:
        setup = f": {len(snippets)} statements, none an assert or a call" if snippets else ""
        return {"passed": 0, "total": 0, "reason": "no-tests" + setup}
    passed, reasons = 0, []
    if checks:
        nonce = secrets.token_hex(16)
        harness = _HARNESS.format(nonce=nonce, tests=snippets, program=program)
        result = run_sandboxed(harness, "", limits)
        marks = re.findall(rf"^{nonce} (PASS|FAIL|SETUP|PROGRAM) ?(\d*) ?(\w*)", result.stdout, re.M)
        done = {int(i) for kind, i, _ in marks if kind == "PASS" and i and int(i) in checks}
        passed += len(done)
        failures = [name or kind for kind, _, name in marks if kind != "PASS"]
        if len(done) < len(checks):
            reasons.append(result.reason or (failures[0] if failures else f"exit {result.returncode}"))
    for stdin, want in pairs:
        result = run_sandboxed(program, stdin, limits)
        if not result.reason and result.returncode == 0 and _same_output(result.stdout, want):
            passed += 1
        else:
            reasons.append(result.reason or (f"exit {result.returncode}" if result.returncode else "wrong-answer"))
    return {"passed": passed, "total": total, "reason": reasons[0] if reasons else ""}


class CodeExecution:
    """Reward = fraction of a sample's tests that its program passes (or, with `partial_credit=False`, 1.0 when
    it passes all of them and 0.0 otherwise: DeepCoder's sparse outcome reward, which pays nothing for a program
    that gets some asserts right by luck).

    Args:
        limits: Sandbox limits for each run.
        sample_timeout: Hard wall limit for all runs of one sample together (pool).
        partial_credit: Pay the fraction of tests passed (True) or only a full pass (False).
    """

    __name__ = "code_execution"

    required_columns = [("tests",)]  # the test specs (rewards.calls.required_columns)

    def __init__(self, limits: SandboxLimits = SandboxLimits(), sample_timeout: float = 60.0,
                 partial_credit: bool = True):
        self.limits = limits
        self.sample_timeout = sample_timeout
        self.partial_credit = partial_credit
        if not partial_credit:
            self.__name__ = "code_pass_all"

    def details(self, completions: Sequence[Any], tests: Sequence[Any] | None = None, **kwargs: Any) -> list[dict]:
        """Per-sample `{"passed", "total", "reason"}`.

        Raises:
            RewardCallError: for a malformed call (see `rewards.calls.check_call`): `completions` or
                `tests` not a list (a bare string), or `tests` of another length than `completions`.
        """
        completions = check_call(self.__name__, completions, {**kwargs, "tests": tests}, read=("tests",))
        tests = list(tests) if tests is not None else [None] * len(completions)
        texts = [completion_text(c) for c in completions]
        out: list[dict | None] = [None] * len(completions)
        todo = []
        for i, (text, t) in enumerate(zip(texts, tests)):
            if text is None and t is not None:  # a completion with no text: nothing to run
                out[i] = {"passed": 0, "total": 0, "reason": f"bad-input: {type(completions[i]).__name__}"}
            else:
                todo.append(i)
        args = [(extract_program(texts[i] or ""), tests[i], self.limits) for i in todo]
        results = get_default_pool().map(run_tests, args, timeout=self.sample_timeout, memory_mb=None)
        for i, r in zip(todo, results):
            out[i] = r.value if r.ok else {"passed": 0, "total": 0, "reason": r.reason}
        return out

    def __call__(self, completions: Sequence[Any], tests: Sequence[Any] | None = None,
                 log_extra: Callable[[str, list], None] | None = None, **kwargs: Any) -> list[float | None]:
        """Score completions (TRL signature): the fraction of tests passed; None where a sample has no tests,
        0.0 where its tests are malformed (the reason says how)."""
        details = self.details(completions, tests, **kwargs)
        if log_extra is not None:
            log_extra("code_passed", [d["passed"] for d in details])
            log_extra("code_reason", [d["reason"] for d in details])
        return [None if d["reason"].startswith("no-tests") else self._score(d) for d in details]

    def _score(self, detail: dict) -> float:
        if not detail["total"]:
            return 0.0
        if self.partial_credit:
            return detail["passed"] / detail["total"]
        return float(detail["passed"] == detail["total"])


code_execution = CodeExecution()
