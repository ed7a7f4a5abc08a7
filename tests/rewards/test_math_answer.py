"""Answer extraction, normalisation and equivalence (real sympy and math-verify, in-process)."""

import time

import pytest

from rewards.extract import completion_text, extract_answer, normalize_answer, reads_finished
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
        ("The answer is 0.25", "\\frac{1}{4}"),  # an exact decimal is the fraction
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
        ("The answer is 0.3333", "\\frac{1}{3}"),  # a rounded decimal is not the fraction
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


# equiv_cases rows (data/grading/equiv_cases.jsonl) that the grader used to miss.
@pytest.mark.parametrize(
    ("text", "answer", "how"),
    [
        ("so the number is 10 which is 1,000.99m²", "1,000.99", "last_number"),  # never cut a number short
        ("we get 2x at last", None, "none"),  # "2x" is no number
        ("Soucis : 2,74 $ a..", "2,74", "bare"),  # prose around one number: the number
        ("计划的比例为13/28", "13/28", "bare"),
        ("2 \\sin x", "2 \\sin x", "bare"),  # math words are not prose
        ("Therefore $x \\geq 5$ is the solution.", "x \\geq 5", "last_math"),
        ("Thus $x <= 2$ is our answer.", "x <= 2", "last_math"),
        ("$$\\boxed{(3, 3)} \\text{ for part (a) and } \\boxed{(1, 1)}$$", "(3, 3), (1, 1)", "boxed"),
        ("\\boxed{1} papers and \\boxed{2} bins", "1, 2", "boxed"),
        ("\\boxed{1} no no no no no \\boxed{2}", "2", "boxed"),
    ],
)
def test_extract_answer_equiv_cases(text, answer, how):
    assert extract_answer(text) == (answer, how)


@pytest.mark.parametrize(
    ("pred", "gold", "correct"),
    [
        ("so the number is 10 which is 1,000.99m²", "1000.99", True),
        ("0.111", "0,111", True),  # a leading zero group is a decimal comma, not thousands
        ("\\boxed{0,111}", "111", False),
        ("Soucis : 2,74 $ a..", "2.74", True),
        ("计划的比例为13/28", "13/28", True),
        ("Therefore $x \\geq 5$ is the solution.", "$x >= 5$", True),
        ("Therefore $x \\gt 5$ is the solution.", "$x > 5$", True),
        ("Therefore $x \\geq 5$ is the solution.", "$x > 5$", False),
        ("Therefore $x > 5$ is the solution.", "5", False),  # an inequality is not its bound
        ("$$\\boxed{(3, 3)} \\text{ for part (a) and } \\boxed{(1, 1)}$$", "(3, 3), (1, 1)", True),
        # a gold's boxes are read as a prediction's: the final run joined by connectors
        ("\\boxed{1,2}", "\\boxed{1} no no no no no \\boxed{2}", False),
        ("\\boxed{2,3}", "\\boxed{1} and and and or thus but \\boxed{2} and \\boxed{3}", True),
        ("\\boxed{1,2,3}", "\\boxed{1} and and and or thus but \\boxed{2} and \\boxed{3}", False),
        ("\\boxed{1,2}", "\\boxed{1} papers and \\boxed{2} bins", True),
        ("\\boxed{-2,1}", "\\(\\boxed{1}\\) and \\(\\boxed{-2}\\).", True),
        # tuples, intervals, matrices of numbers: the plain-number rule, element by element; a rounded decimal is
        # not the fraction (these rows come from Math-Verify's tests, which accept 2.6667 for 8/3 and 0.33 for 1/3)
        ("$(0.6,2.6667]$", "$(\\frac{3}{5},\\frac{8}{3}]$", False),
        ("$(0.6,2.25]$", "$(\\frac{3}{5},\\frac{9}{4}]$", True),
        ("$(0.6,2.7]$", "$(\\frac{3}{5},\\frac{8}{3}]$", False),
        ("$(0.6,2.6667)$", "$(\\frac{3}{5},\\frac{8}{3}]$", False),
        ("$\\begin{pmatrix}0.33\\\\0.2 \\end{pmatrix}$", "$(\\begin{pmatrix}\\frac{1}{3}\\\\ \\frac{1}{5} \\end{pmatrix})$", False),
        ("$\\begin{pmatrix}0.25\\\\0.2 \\end{pmatrix}$", "$(\\begin{pmatrix}\\frac{1}{4}\\\\ \\frac{1}{5} \\end{pmatrix})$", True),
        ("$\\begin{pmatrix}0.3\\\\0.2 \\end{pmatrix}$", "$(\\begin{pmatrix}\\frac{1}{3}\\\\ \\frac{1}{5} \\end{pmatrix})$", False),
        ("\\boxed{(2, 1)}", "(1, 2)", False),
    ],
)
def test_equiv_cases_verdicts(pred, gold, correct):
    verdict = grade_answer(pred, gold)
    assert verdict.correct is correct, verdict


# Seen on published model outputs (SkyThought MATH-500 generations cut off at their token limit): a response that
# stops mid-sentence or mid-equation states no answer, and the number it happens to end on must not be paid.
TRUNCATED = [
    ("We have 3 apples and 4 more, so 3 + 4 = 7, then 7 *", "7"),
    ("3 + 4 = 7, then 7 *", "7"),  # short enough to be read as a bare answer: it is not one
    ("Modulus is sqrt(12800) = 16 * sqrt(5)\n\nBut earlier methods gave me 16, so", "16"),
    ("So, p(0) + p(4) = -6r + 24 - 6r = 24 - 12r\n\nNow, since r = -6, p(0) + p(4) = 24 - 12*(-6) = 24 +", "24"),
    ("The maximum must occur inside the square.\n\nNext, we compute the partial derivatives:\n\n1.", "1"),
    ("Total MST weight: 5 + 3 + 5 = 13.\n\nWait, now it'", "13"),
    ("the minimum value is 64.\n\n<|end_of_thought|>\n\n<|begin_of_solution|>\n\nLet \\( a, b, c, d", "64"),
    ("<think>\nSo 16384 feet * 2 = <<16384*2=32768>>32768 feet\nThe total is 32768", "32768"),  # think never closed
    ("The popped kernels in the first 1440 seconds number 796224000 * 4 = <<796224", "796224"),
    ("Kylar needs to pay 5 * 1", "1"),
]


@pytest.mark.parametrize(("text", "gold"), [
    ("<think>\n20}.", "20"),                                # seen on the demo policy's GSM8K outputs
    ("<think>\n7", "7"),
    ("<|begin_of_thought|>\nso it is $\\frac{1}{2}$.", "1/2"),
])
def test_an_answer_inside_reasoning_left_open_is_not_paid(text, gold):
    """A reasoning block that was never closed holds no final answer unless it says so (a box, a phrase): its bare
    text or last formula is wherever the reasoning stopped."""
    verdict = grade_answer(text, gold)
    assert not verdict.correct and verdict.extracted is None, verdict
    assert verdict.reason.startswith("unfinished-text"), verdict
    assert grade_answer(text.replace("<think>", "<think></think>").replace("<|begin_of_thought|>", ""), gold).correct


@pytest.mark.parametrize(("text", "gold"), TRUNCATED)
def test_a_truncated_response_is_not_paid_for_its_last_number(text, gold):
    assert extract_answer(text)[1] in ("last_number", "none")
    assert not reads_finished(text)
    verdict = grade_answer(text, gold)
    assert not verdict.correct, verdict
    assert verdict.extracted is None  # no answer is there: it neither pays nor votes in maj@k
    if extract_answer(text)[1] == "last_number":
        assert verdict.reason.startswith("unfinished-text (last number ")


@pytest.mark.parametrize(("text", "gold"), [
    ("Therefore, the number of trailing zeros in 42! is 9.\n\nI think that's the answer.", "9"),
    ("Solving, we find n = 2700 / 180\n\nn = 15", "15"),  # a bare answer line
    ("La réduction est de 100 * 0,30 = 30 $. Le coût final est donc de 100 - 30 = 70", "70"),  # a concluding value
    ("首先，我们知道最初有3只鸟和4只鹳鸟坐在篱笆上，所以总共有3 + 4 = 7只鸟和鹳鸟。然后，又有6只鹳鸟来加入它们，所以鹳鸟的总数变成4 + 6 = 10只。"
     "因此，现在篱笆上总共有3只鸟（假设鸟的数量没有变化）和10只鹳鸟，所以一共有3 + 10 = 13只鸟和鹳鸟。", "13"),
    ("so the number is 10 which is 1,000.99m²", "1000.99"),
])
def test_a_finished_response_keeps_the_last_number_fallback(text, gold):
    assert extract_answer(text)[1] == "last_number"
    assert reads_finished(text)
    assert grade_answer(text, gold).correct


@pytest.mark.parametrize(("text", "finished"), [
    ("In conclusion, we have confirmed that:\n\n$$\\tan A = 2$$\n\n<|end_of_solution|>", True),
    ("So 3 + 4 = 7, and the total is 7.", True),
    ("**858**", True),
    ("x = 5 * 42 = 210\n\nNow, 210 mod 83:\n\n83 * 2 = 166\n\n210 - 166 = 44", False),  # a step, not an answer
    ("Is it 12?", False),
    ("<think>\n5 * 6 = }.", False),
    ("we get 12 in total and nothing else to", False),
    (None, False),
])
def test_reads_finished(text, finished):
    assert reads_finished(text) is finished


@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("\\boxed{0.33}", "\\frac{1}{3}", False),
    ("\\boxed{0.333}", "\\frac{1}{3}", False),
    ("\\boxed{0.3333333333}", "1/3", False),  # however many digits: a rounded decimal is not 1/3
    ("\\boxed{2.6667}", "\\frac{8}{3}", False),
    ("\\boxed{0.5}", "\\frac{1}{2}", True),  # exact decimals are exact numbers
    ("\\boxed{0.125}", "1/8", True),
    ("\\boxed{\\frac{1}{2}}", "0.5", True),
    ("\\boxed{0.33}", "0.33", True),
    ("\\boxed{0.3}", "0.30000000000000004", True),  # a decimal gold may carry float noise: relative 1e-6
    ("\\boxed{1.414214}", "1.4142135", True),
    ("\\boxed{1.41}", "1.4142135", False),
    ("\\boxed{0.000124}", "0.000123", False),  # the tolerance is relative, not absolute
])
def test_rounded_decimals_are_not_exact_fractions(pred, gold, correct):
    verdict = grade_answer(pred, gold)
    assert verdict.correct is correct, verdict


@pytest.mark.parametrize(("pred", "gold"), [
    ("\\boxed{10\\%}", "10"),  # GSM8K/MATH write the gold of a percent question as its number
    ("\\boxed{10\\%}", "0.1"),  # 10% is the quantity 0.1
    ("The answer is 10%.", "0.1"),
    ("\\boxed{10}", "10\\%"),
    ("\\boxed{0.1}", "10\\%"),
    ("\\boxed{12.5\\%}", "\\frac{1}{8}"),
])
def test_a_percentage_matches_its_number_and_its_quantity(pred, gold):
    verdict = grade_answer(pred, gold)
    assert verdict.correct, verdict


@pytest.mark.parametrize(("pred", "gold"), [
    ("\\boxed{10\\%}", "0.2"),
    ("\\boxed{0.1\\%}", "10\\%"),  # a sign on both sides: the numbers must be equal
    ("\\boxed{0.1}", "10"),  # no percent sign anywhere: no percent reading
    ("\\boxed{10\\%}", "1"),
])
def test_a_percentage_does_not_match_other_numbers(pred, gold):
    verdict = grade_answer(pred, gold)
    assert not verdict.correct, verdict


def test_reads_finished_stays_fast_on_hostile_lines():
    hostile = ["$" * 100_000 + "x", "=" + " " * 100_000 + "x", "so " + "9" * 100_000, "is " + "1 " * 50_000,
               "(" * 50_000, " $" * 50_000 + "x", "**" * 50_000 + " x", "so is " + "1,000" * 20_000]
    start = time.monotonic()
    for text in hostile:
        reads_finished(text)
    assert time.monotonic() - start < 1.0
