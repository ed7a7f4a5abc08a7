"""Answer extraction, normalisation and equivalence (real sympy and math-verify, in-process)."""

import pytest

from rewards.extract import completion_text, extract_answer, normalize_answer
from rewards.math_answer import Verdict, grade_answer, parse_number


@pytest.mark.parametrize(
    ("text", "answer", "how"),
    [
        ("so x = \\boxed{\\frac{1}{\\sqrt{2}}}.", "\\frac{1}{\\sqrt{2}}", "boxed"),
        ("first \\boxed{1} then \\fbox{2}", "2", "boxed"),
        ("\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}", "(2, 2), (6, 2)", "boxed"),
        ("echo \\boxed{} \\boxed{7} \\boxed{}", "7", "boxed"),
        ("48/2 = <<48/2=24>>24\n#### 24", "24", "####"),
        ("Thus the answer is $\\frac{3}{4}$. Done", "\\frac{3}{4}", "phrase"),
        ("Final Answer: The final answer is $10,455$. I hope it is correct.", "10,455", "phrase"),
        ("She makes 13 * 2 = 26\nA: 26", "26", "A:"),
        ("(x-2)(x+2)", "(x-2)(x+2)", "bare"),
        ("the pair that solves it is $(7, 6)$. <|im_start|>user", "(7, 6)", "last_math"),
        ("we get 12 in total and nothing else to say", "12", "last_number"),
    ],
)
def test_extract_answer(text, answer, how):
    assert extract_answer(text) == (answer, how)


def test_extract_nothing():
    assert extract_answer("no digits here at all, sorry") == (None, "none")


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        ("\\$1,000.", "1000"),
        ("**90^\\circ**", "90"),
        ("\\dfrac{1}{2}", "\\frac{1}{2}"),
        ("\\left( 1, 2 \\right)", "( 1, 2 )"),
        ("50\\%", "50"),
        ("10\\text{ cm}^2", "10"),
        ("12^{\\text{th}} \\text{ grade}", "12"),
        ("900,\\!000", "900000"),
        ("1{,}000", "1000"),
        ("\\text{(B)}", "(B)"),
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_completion_text_accepts_chat_messages():
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"
    assert completion_text("plain") == "plain"
    assert completion_text(None) is None
    assert completion_text([{"role": "user", "content": 3}]) is None


def test_parse_number_exact():
    assert parse_number("033")[0] == 33
    assert parse_number("-\\frac{3}{4}")[0] == parse_number("-0.75")[0]
    assert parse_number("x+1") is None


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("\\boxed{033}", "33"),  # AIME integer
        ("\\boxed{0.5}", "\\frac{1}{2}"),
        ("\\boxed{\\dfrac{1}{2}}", "1/2"),
        ("#### 1,000", "1000"),
        ("\\boxed{x = 3}", "3"),
        ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}"),
        ("\\boxed{\\{1, 2, 3\\}}", "\\{3, 2, 1\\}"),
        ("\\boxed{(1, 2]}", "(1,2]"),
        ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
        ("\\boxed{x^2+2x+1}", "(x+1)^2"),
        ("\\boxed{90^\\circ}", "90"),
        ("The answer is 0.3333", "\\frac{1}{3}"),
        ("\\boxed{50\\%}", "50"),
        ("\\boxed{\\$18.00}", "18"),
    ],
)
def test_equivalent(pred, gold):
    verdict = grade_answer(pred, gold)
    assert verdict.correct, verdict


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("\\boxed{34}", "33"),
        ("\\boxed{0.33}", "0.34"),
        ("\\boxed{(1, 2)}", "(1,2]"),
        ("\\boxed{(2, 1)}", "(1, 2)"),
        ("\\boxed{x^2+1}", "(x+1)^2"),
        ("\\boxed{3}", "\\{3, 4\\}"),
    ],
)
def test_not_equivalent(pred, gold):
    verdict = grade_answer(pred, gold)
    assert not verdict.correct, verdict
    assert verdict.reason


@pytest.mark.parametrize(
    ("pred", "reason"),
    [
        (None, "bad-input"),
        ("", "empty"),
        ("no answer in here, friend", "no-answer"),
        (b"\x00\xff", "bad-input"),
        ("\\boxed{10^{10^{10^{10}}}}", "refused: power-tower"),
        ("\\boxed{100000!}", "refused: huge-factorial"),
    ],
)
def test_bad_input_is_zero_with_reason(pred, reason):
    verdict = grade_answer(pred, "5")
    assert isinstance(verdict, Verdict)
    assert not verdict.correct
    assert verdict.reason.startswith(reason), verdict


def test_verdict_reports_parsed_forms():
    verdict = grade_answer("so \\boxed{\\frac{2}{4}}", "0.5")
    assert verdict.correct and verdict.extracted == "\\frac{2}{4}"
    assert verdict.to_dict()["pred_parsed"] == "1/2"


# Found by GRPO on the tiny policy: it learned to stop after "a op b =" and was paid for it, because the
# whole unfinished text was taken as a bare answer and "5 * 6" evaluated to the gold 30.
@pytest.mark.parametrize("text", [
    "<think>\n5 * 6 = }.<｜end▁of▁sentence｜>",
    "So 5 * 6 = ",
    "5 * 6 =",
    "<think>\n5 * 6 = \n</think>",
])
def test_an_unfinished_equation_is_not_an_answer(text):
    verdict = grade_answer(text, "30")
    assert not verdict.correct, verdict


def test_deepseek_special_tokens_and_think_tags_do_not_hide_the_answer():
    text = "<think>\n5 * 6 = 30\n</think>\nThe answer is \\boxed{30}.<｜end▁of▁sentence｜>"
    assert grade_answer(text, "30").correct
    assert grade_answer("<think>\n7 + 5 = 12\n</think>\n12<｜end▁of▁sentence｜>", "12").correct
