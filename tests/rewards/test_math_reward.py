"""math_accuracy through the real worker pool: TRL signature, reasons, hostile input."""

import pickle
import time

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rewards import MathAccuracy, RewardCallError, grade_batch, math_accuracy

LIMIT = 5.0  # the reward's default per-sample wall limit


def test_trl_signature_strings_and_chat_messages():
    completions = [
        "<think>2+2</think> \\boxed{4}",
        [{"role": "assistant", "content": "#### 5"}],
        "the answer is 7",
    ]
    assert math_accuracy(completions, answer=["4", "4", None]) == [1.0, 0.0, None]
    # TRL passes prompts and other columns too: they are ignored
    assert math_accuracy(["\\boxed{1}"], prompts=["p"], solution=["1"], trainer_state=None) == [1.0]


def test_log_extra_receives_reasons():
    logged = {}
    math_accuracy(["\\boxed{x=3}", "I have no idea at all"], answer=["3", "3"], log_extra=logged.__setitem__)
    assert logged["answer_extracted"][0] == "x=3"
    assert logged["math_reason"][0].startswith("string-equal-rhs")
    assert logged["math_reason"][1] == "no-answer"


def test_details_and_pickling():
    reward = MathAccuracy(timeout=2.0)
    clone = pickle.loads(pickle.dumps(reward))
    verdicts = clone.details(["\\boxed{\\frac{1}{2}}"], answer=["0.5"])
    assert verdicts[0].correct and verdicts[0].reason == "numeric-equal"


def test_misaligned_column_is_a_reward_call_error_naming_both_counts():
    with pytest.raises(RewardCallError, match=r"^math_accuracy: 2 completions but 1 value in column 'answer'$"):
        math_accuracy(["\\boxed{1}", "\\boxed{2}"], answer=["1"])
    with pytest.raises(RewardCallError, match="3 completions but 2 values in column 'answer'"):
        math_accuracy(["\\boxed{1}"] * 3, answer=["1", "1"])  # used to score 0 silently
    with pytest.raises(RewardCallError, match="1 completions but 2 values in column 'prompts'"):
        math_accuracy(["\\boxed{1}"], answer=["1"], prompts=["p", "q"])


@pytest.mark.parametrize("completions", [None, "\\boxed{1}", b"\\boxed{1}", 5, {"role": "assistant", "content": "1"}])
def test_completions_that_are_not_a_list_are_a_reward_call_error(completions):
    for call in (math_accuracy, math_accuracy.explain, math_accuracy.details):
        with pytest.raises(RewardCallError, match="^math_accuracy: completions is (None|a [a-z]+), expected a list"):
            call(completions, answer=["1"])


def test_a_bare_string_is_not_read_as_a_list_of_characters():
    with pytest.raises(RewardCallError, match="completions is a str.*wrap a single completion in a list"):
        math_accuracy("42", answer=["4", "2"])  # two "completions", '4' and '2', used to score [1.0, 1.0]
    with pytest.raises(RewardCallError, match="column 'answer' is a str"):
        math_accuracy(["42", "42"], answer="42")
    assert issubclass(RewardCallError, ValueError)


def test_bad_samples_score_zero_with_a_reason_and_never_raise():
    scores, reasons = math_accuracy.explain([None, 12, [{"role": "assistant", "content": None}], "\\boxed{1}"],
                                            answer=["1"] * 4)
    assert scores == [0.0, 0.0, 0.0, 1.0]
    assert reasons[:3] == ["bad-input: NoneType", "bad-input: int", "bad-input: list"]
    assert math_accuracy([], answer=[]) == [] and math_accuracy((), answer=()) == []


def test_a_truncated_completion_explains_why_it_is_not_paid():
    scores, reasons = math_accuracy.explain(["We have 3 apples and 4 more, so 3 + 4 = 7, then 7 *"], answer=["7"])
    assert scores == [0.0] and reasons == ["unfinished-text (last number '7' is not an answer)"]


def test_timeout_is_a_reason():
    verdicts = grade_batch(["\\boxed{x^2+2x+1}"], ["(x+1)^2"], timeout=0.0)
    assert verdicts[0].reason == "timeout" and not verdicts[0].correct


BAD = [
    None,
    "",
    "x" * (1 << 20),
    "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",
    "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}",
    "\\boxed{10^{10^{10^{10}}}}",
    "\\boxed{(10^{10})!}",
    "\\boxed{9999999999!}",
    "\\boxed{2^{2^{2^{2^{2^{2}}}}}}",
    "\\boxed{" + "1+" * 20000 + "1}",
    bytes(range(256)).decode("latin-1"),
    b"\x00\xff\xfe".decode("latin-1") * 1000,
    12345,
    [{"role": "assistant", "content": None}],
]


def test_bad_input_is_zero_within_limit():
    start = time.monotonic()
    verdicts = grade_batch([b for b in BAD], ["5"] * len(BAD))
    assert time.monotonic() - start < LIMIT * len(BAD) / 2 + 5
    for bad, verdict in zip(BAD, verdicts):
        assert verdict.correct is False and verdict.reason, (repr(bad)[:60], verdict)
    assert math_accuracy(BAD, answer=["5"] * len(BAD)) == [0.0] * len(BAD)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.text(max_size=30))
def test_property_any_text_scores_in_range(text, gold):
    start = time.monotonic()
    scores = math_accuracy([text, "\\boxed{" + text + "}"], answer=[gold, gold])
    assert all(s in (0.0, 1.0) or (s is None) for s in scores)
    assert time.monotonic() - start < 2 * LIMIT + 3


LATEX_ATOMS = st.sampled_from(["x", "1", "2", "\\pi", "\\sqrt{2}", "\\frac{1}{3}", "^", "_", "{", "}", "(", ")",
                               "+", "-", "\\cdot", "!", "=", ",", "\\infty", "\\left(", "\\right)", "10^{", "\\{"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LATEX_ATOMS, max_size=60).map("".join))
def test_property_latex_soup_never_raises(soup):
    start = time.monotonic()
    verdict = grade_batch(["\\boxed{" + soup + "}"], [soup or "0"])[0]
    assert isinstance(verdict.correct, bool) and (verdict.correct or verdict.reason)
    assert time.monotonic() - start < LIMIT + 3


def test_explain_gives_the_scores_of_a_call_and_a_readable_reason_each():
    completions = ["<think>\n5 * 6 = 30\n</think>\nThe answer is \\boxed{30}.",
                   "<think>\n5 * 6 = }.",  # the old reward hack: a truncated line, no final answer
                   "I have no idea at all",
                   "\\boxed{\\frac{1}{2}}",
                   "\\boxed{7}"]
    answers = ["30", "30", "30", "0.5", None]
    scores, reasons = math_accuracy.explain(completions, answer=answers, prompts=["p"] * 5)
    assert scores == math_accuracy(completions, answer=answers) == [1.0, 0.0, 0.0, 1.0, None]
    assert reasons[0] == "string-equal (boxed): extracted '30', gold '30'"
    assert reasons[1] == "unfinished-text (last number '6' is not an answer)"  # shows what the grader read
    assert reasons[2] == "no-answer"
    assert reasons[3] == "numeric-equal: extracted '\\\\frac{1}{2}' (parsed '1/2'), gold '1/2'"
    assert reasons[4] == "no gold"


def test_explain_reports_limits_and_misaligned_columns():
    scores, reasons = MathAccuracy(timeout=0.0).explain(["\\boxed{x^2+2x+1}"], answer=["(x+1)^2"])
    assert scores == [0.0] and reasons == ["timeout"]
    with pytest.raises(RewardCallError, match="2 completions but 1 value in column 'answer'"):
        math_accuracy.explain(["\\boxed{1}", "\\boxed{2}"], answer=["1"])


def test_grade_batch_of_unequal_lengths_is_a_reward_call_error():
    with pytest.raises(RewardCallError, match="2 predictions but 1 gold answers"):
        grade_batch(["1", "2"], ["1"])


def test_a_call_without_any_gold_column_is_an_error_not_a_silent_none():
    with pytest.raises(RewardCallError, match=r"math_accuracy: no gold answers: pass the dataset's column as "
                                              r"answer=\[\.\.\.\]"):
        math_accuracy(["The answer is \\boxed{2}"])
    assert math_accuracy(["The answer is \\boxed{2}"], answer=[None]) == [None]  # a sample without gold: n/a
    assert math_accuracy(["The answer is \\boxed{2}"], solution=["2"]) == [1.0]
