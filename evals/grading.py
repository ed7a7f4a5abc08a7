"""Grading a benchmark's outputs: every output of every problem through the rewards grader (the same verdicts
training pays for), then the statistics of evals.metrics, and one record per problem a person can read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from evals.metrics import score_problems
from rewards import grade_batch
from rewards.code import extract_program, run_tests
from rewards.pool import get_default_pool


@dataclass
class BenchmarkResult:
    """One benchmark's evaluation.

    Attributes:
        name: the benchmark ("gsm8k", "math500", "aime2024", "synthetic", a custom file's name).
        scores: evals.metrics.score_problems's dict (pass@1, pass@k, maj@n and their standard errors), plus
            "seconds" and "mean_output_tokens" where the caller knows them.
        records: one dict per problem: id, problem, answer (gold), outputs, extracted (each output's answer),
            correct (each output's verdict) and reasons (each verdict's reason, e.g. "numeric-not-equal").
        settings: how the outputs were produced (model, n, temperature, ...) or where they were read from.
    """

    name: str
    scores: dict[str, float]
    records: list[dict[str, Any]]
    settings: dict[str, Any] = field(default_factory=dict)


def grade_outputs(name: str, problems: Sequence[Any], outputs: Sequence[Sequence[str | None]], *,
                  timeout_s: float = 5.0, settings: dict[str, Any] | None = None) -> BenchmarkResult:
    """Grade `outputs[i]` (any number of texts) against problem i's gold answer and score the benchmark.

    Args:
        problems: objects with `id`, `question` and `answer` attributes (problems.Problem, or any such record);
            problems with `tests` are code problems, graded by running them (`grade_programs`).
        outputs: per problem, its output texts in generation order (the order majority ties are broken by).
        timeout_s: the grader's wall-time limit per output; an output over it is wrong with reason "timeout".

    Raises:
        ValueError: `outputs` has not one entry per problem, or a problem has no output.
    """
    if len(outputs) != len(problems):
        raise ValueError(f"{name}: {len(outputs)} output lists for {len(problems)} problems")
    if any(getattr(p, "tests", None) for p in problems):
        return grade_programs(name, problems, outputs, settings=settings)
    flat = [(p.answer, text) for p, texts in zip(problems, outputs) for text in texts]
    verdicts = iter(grade_batch([text for _, text in flat], [gold for gold, _ in flat], timeout=timeout_s))
    records, correct, votes = [], [], []
    for problem, texts in zip(problems, outputs):
        graded = [next(verdicts) for _ in texts]
        correct.append([v.correct for v in graded])
        # equivalent answers vote together: the grader's parsed form where it has one ("1/2" for "0.5" and "\frac12")
        votes.append([(v.pred_parsed or v.extracted) if v.extracted is not None else None for v in graded])
        records.append({"id": problem.id, "problem": problem.question, "answer": problem.answer,
                        "outputs": list(texts), "extracted": [v.extracted for v in graded],
                        "correct": correct[-1], "reasons": [v.reason for v in graded]})
    return BenchmarkResult(name, score_problems(correct, votes), records, dict(settings or {}))


def program_header(reference: str) -> str:
    """The import lines at the top of a reference program (HumanEval's prompts start with them): every program
    graded for that problem gets them, so that a solution is not failed for leaving out what the prompt gave."""
    head = reference[:reference.find("def ")] if "def " in reference else ""
    return "".join(line + "\n" for line in head.splitlines() if line.startswith(("import ", "from ")))


def failure_kind(reason: str) -> str:
    """A test run's failure in a person's words: syntax error, wrong answer, timeout, memory, or crash (naming
    the exception)."""
    if reason in ("SyntaxError", "IndentationError", "TabError"):
        return "syntax error"
    if reason in ("AssertionError", "wrong-answer"):
        return "wrong answer"
    if reason in ("timeout", "cpu-limit"):  # out of wall time or of CPU time: it ran too long either way
        return "timeout"
    if reason == "memory":
        return reason
    return f"crash: {reason}"


def grade_programs(name: str, problems: Sequence[Any], outputs: Sequence[Sequence[str | None]], *,
                   settings: dict[str, Any] | None = None) -> BenchmarkResult:
    """Code problems: the program in each output's last ```python block (with the reference's imports before it)
    runs against the problem's tests in the sandbox, through the rewards pool; an output is correct when every
    test passes. Identical programs vote together for maj@n."""
    jobs = [(program_header(p.answer) + extract_program(text or ""), p.tests)
            for p, texts in zip(problems, outputs) for text in texts]
    results = iter(get_default_pool().map(run_tests, jobs, timeout=60.0, memory_mb=None))
    programs = iter(program for program, _ in jobs)
    records, correct, votes = [], [], []
    for problem, texts in zip(problems, outputs):
        ran = [next(results) for _ in texts]
        runs = [r.value if r.ok else {"passed": 0, "total": 0, "reason": r.reason} for r in ran]
        passed = [run["total"] > 0 and run["passed"] == run["total"] for run in runs]
        written = [next(programs) for _ in texts]
        correct.append(passed)
        votes.append([program.strip() for program in written])
        records.append({"id": problem.id, "problem": problem.question, "answer": problem.answer,
                        "outputs": list(texts), "extracted": written, "correct": passed,
                        "tests_passed": [f"{run['passed']}/{run['total']}" for run in runs],
                        "reasons": ["passed" if ok else failure_kind(run["reason"] or "no-tests")
                                    for ok, run in zip(passed, runs)]})
    return BenchmarkResult(name, score_problems(correct, votes), records, dict(settings or {}))
