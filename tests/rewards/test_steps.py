"""Step checking with real sympy, and the math_steps process reward through the pool."""

import pytest

from rewards import RewardCallError
from rewards.steps import MathSteps, check_steps, math_steps, step_summary


def _statuses(text):
    return [(c.lhs, c.rhs, c.status) for c in check_steps(text)]


def test_gsm8k_annotations_and_plain_arithmetic():
    text = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\nSo 18 + 1 = 20."
    assert _statuses(text) == [("16 - 3 - 4", "9", "valid"), ("9*2", "18", "valid"), ("18 + 1", "20", "invalid")]


def test_chains_latex_and_rounding():
    text = "$\\frac{1}{2} \\cdot 4 = 2 = 1 + 2$\n22/7 = 3.14, 1/3 = 0.34"
    assert [c.status for c in check_steps(text)] == ["valid", "invalid", "valid", "invalid"]


def test_variables_from_earlier_steps():
    text = "We have $2x + 3 = 13$.\nSo $x = 5$.\nThen $x^2 = 25$ and $3x = 16$."
    claims = check_steps(text)
    assert [c.status for c in claims] == ["unverifiable", "valid", "valid", "invalid"]
    assert claims[1].reason.startswith("satisfies")
    assert [c.step for c in claims] == [0, 1, 2, 2]


def test_wrong_solution_is_caught():
    claims = check_steps("$2x + 3 = 13$ gives\n$x = 6$")
    assert claims[1].status == "invalid"


def test_symbolic_identity_and_span():
    text = "Expand: $(a+b)^2 = a^2 + 2ab + b^2$"
    (claim,) = check_steps(text)
    assert claim.status == "valid" and claim.reason == "identity"
    assert text[claim.span[0] : claim.span[1]].startswith("$(a+b)^2")


def test_unverifiable_and_junk():
    assert [c.status for c in check_steps("Let f = the function we want = unknown")] == []
    assert check_steps(None) == []
    assert all(c.status == "unverifiable" for c in check_steps("$10^{10^{10^{10}}} = 3$"))


def test_summary_and_reward():
    text = "1 + 1 = 2\n2 + 2 = 5\n3 + 3 = 6"
    summary = step_summary(check_steps(text))
    assert summary == {"valid": 2, "invalid": 1, "unverifiable": 0, "score": 2 / 3, "first_error": 1}
    logged = {}
    scores = math_steps([text, [{"role": "assistant", "content": "no maths"}]], log_extra=logged.__setitem__)
    assert scores == [2 / 3, None]
    assert logged["steps_first_error"] == [1, None]
    assert MathSteps(no_claims_score=0.5)(["nothing here"]) == [0.5]


def test_reward_never_hangs_on_huge_text():
    scores = MathSteps(timeout=3.0)(["1 + 1 = 2\n" * 50_000, "9" * 100_000 + " = 1"])
    assert all(s is None or 0.0 <= s <= 1.0 for s in scores)


def test_malformed_call_raises_and_bad_samples_score_zero():
    with pytest.raises(RewardCallError, match="^math_steps: completions is a str.*wrap a single completion"):
        math_steps("1 + 1 = 2")  # used to be checked character by character
    with pytest.raises(RewardCallError, match="^math_steps: completions is None"):
        math_steps(None)
    with pytest.raises(RewardCallError, match="2 completions but 1 value in column 'answer'"):
        math_steps(["1 + 1 = 2", "2 + 2 = 4"], answer=["2"])
    logged = {}
    assert math_steps(["1 + 1 = 2", None, 5], log_extra=logged.__setitem__) == [1.0, 0.0, 0.0]
    assert logged["steps_reason"] == ["", "bad-input: NoneType", "bad-input: int"]


def test_long_digit_runs_without_an_equation_are_checked_in_linear_passes():
    """A degenerate policy's output ("...2131313133132...</think>2323...") made the plain-equation pattern split each
    digit run every possible way (2^(n-1)); it hung a search's step checker for minutes. Now each run is read whole."""
    import time

    texts = ["<think>\n28 * 3 = 8 \\boxed{2131313131313313313132332232323222243223023222222322</think>2323224232232232",
             "<think>\n73 * 2 = 14ge5 263226 2231</think>732323322332</think>3234923443433243ck24234543433214 - 34343",
             "7" * 400 + " + " + "3" * 400]
    started = time.perf_counter()
    claims = [check_steps(text) for text in texts]
    assert time.perf_counter() - started < 5  # the first text alone ran past 2 s before (2^50 ways to split)
    assert [c.status for c in claims[0]] == ["invalid"] and claims[2] == []
