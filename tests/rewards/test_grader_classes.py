"""The classes of grading error of issue 26 (section 2), several cases each: what the grader must never pay, and
correct answers it must accept. Every case is an exact verdict on a string; none depends on float rounding."""

import time

import pytest

from rewards.extract import extract_answer, last_number_refusal, reads_finished
from rewards.math_answer import grade_answer, parse_number
from rewards.units import split_unit


def _graded(pred, gold, correct):
    verdict = grade_answer(pred, gold)
    assert verdict.correct is correct, verdict
    assert verdict.reason, verdict
    return verdict


# --- an unclosed \boxed{ is not an answer ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "gold"), [
    ("So the answer is \\boxed{5", "5"),
    ("\\boxed{\\frac{1}{2}", "\\frac{1}{2}"),
    ("Thus we get $\\boxed{42$", "42"),
    ("The final answer is $\\boxed{12", "12"),
    ("Therefore \\(\\boxed{3 + 4 = 7", "7"),
    ("<think>ok</think> \\boxed{\\sqrt{2}", "\\sqrt{2}"),
    ("#### \\boxed{8", "8"),
    ("The answer is \\fbox{9", "9"),
    ("\\boxed{x = 4", "4"),
    ("First \\boxed{5} wait, that is wrong; recompute: \\boxed{7", "5"),  # the first answer was withdrawn
    ("First \\boxed{5} wait, that is wrong; recompute: \\boxed{7", "7"),
    ("We have found it: \\boxed{", "3"),
])
def test_an_unclosed_box_is_no_answer(text, gold):
    verdict = _graded(text, gold, False)
    assert verdict.extracted is None  # nothing is there: no vote in maj@k either
    assert verdict.reason.startswith("unfinished-text (unclosed \\boxed"), verdict


@pytest.mark.parametrize(("text", "gold"), [
    ("\\boxed{5 oops, let me redo this. The answer is \\boxed{7}.", "7"),  # a closed box after the broken one
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces do not open or close
    ("so \\boxed{\\frac{1}{2}}.", "0.5"),
])
def test_a_closed_box_still_pays(text, gold):
    _graded(text, gold, True)


# --- the last-number fallback needs an answer-like statement -------------------------------------------------------

NOT_STATED_AS_ANSWER = [
    # a section heading or a step label
    ("Let us go on.\n\n## 5. Determining the area.", "5"),
    ("We compute things.\n\n**5. Determining the value of x.**", "5"),
    ("**Step 3: Compute the total.**", "3"),
    ("Next.\n\nCase 4: the sum is even.", "4"),
    # a list marker
    ("some reasoning here\n\n3. Compute the remaining amount.", "3"),
    ("We list the options:\n1) The first one.\n2) The second one.", "2"),
    ("Then:\n(4) Add both numbers together.", "4"),
    # an echoed copy of the problem
    ("Problem: Janet has 3 apples and buys 9 more. Each apple costs 2 dollars.", "2"),
    ("Question: A train goes 60 miles per hour for 3 hours.", "3"),
    ("What is the sum of the first 100 multiples of 149? \\boxed{}.", "149"),
    ("In triangle ABC, we have AB = 13, BC = 14, and AC = 15. Let M be the midpoint of BC. Find AM.", "15"),
    ("Janet's ducks lay 16 eggs per day. Please reason step by step, and put your final answer within \\boxed{}.",
     "16"),
    ("Let me restate the task.\n\nWrite 1/4 as a decimal.", "1/4"),
    # the right-hand side of an equation never solved
    ("First we need to solve the equation 3x + 5 = 20.", "20"),
    ("We set up 2x - 4 = 10 and proceed.", "10"),
    ("The constraint is a + b + c + d = 1.", "1"),
    ("We know that x^2 + y^2 = 25.", "25"),
    ("So we have 2x = 18.", "18"),
    # a number that is part of an expression, not a value
    ("So the side is 2 \\sqrt 2.", "2"),
    ("The length of the side is 4343_6.", "6"),
    # no statement of a value at all
    ("She walked to the store with 5 friends.", "5"),
    ("In 2020 she moved to Paris.", "2020"),
    ("We could try other values.\n\nLet me try 12 next.", "12"),
    ("Hmm, that fails.\n\nWait, maybe 12.", "12"),
]


@pytest.mark.parametrize(("text", "gold"), NOT_STATED_AS_ANSWER)
def test_the_last_number_fallback_needs_an_answer_statement(text, gold):
    assert reads_finished(text)  # each reads as finished: the old rule paid its last number
    verdict = _graded(text, gold, False)
    assert verdict.extracted is None, verdict
    assert verdict.reason.startswith("no-answer (last number "), verdict
    assert last_number_refusal(text) is not None


STATED_AS_ANSWER = [
    ("Therefore, the number of trailing zeros in 42! is 9.\n\nI think that's the answer.", "9"),
    ("Solving, we find n = 2700 / 180\n\nn = 15", "15"),
    ("She has 3 + 4 = 7 apples left.", "7"),
    ("I think $1250 is the right answer.", "1250"),
    ("I think I've approached this from different angles and consistently arrived at 8 meals.", "8"),
    ("Therefore, Hillary has 7 nickels.", "7"),
    ("Then, total arrangements minus arrangements where math books are together: 720 - 240 = 480.", "480"),
    ("Donc, il a déjà 79 g de cire.", "79"),
    ("我们把两个重量加起来。\n\nWe add both weights.\n\n因此，杰西开始慢跑前的体重是192公斤。", "192"),
    ("x = 5 * 42 = 210\n\nSo, x ≡ 44 mod 83\n\nThis matches my earlier result, so I'm confident that 44 is the correct "
     "answer.", "44"),
    ("The probability is 2/3.", "2/3"),
    ("It takes 12 minutes.", "12"),
    ("She will need 12 more.", "12"),
    ("Then he paid $12 for it.", "12"),
    ("We get $\\frac{1}{2}$ in the end.", "\\frac{1}{2}"),
]


@pytest.mark.parametrize(("text", "gold"), STATED_AS_ANSWER)
def test_a_stated_last_number_still_pays_and_its_reason_says_it_was_the_fallback(text, gold):
    assert extract_answer(text)[1] == "last_number"
    assert last_number_refusal(text) is None
    verdict = _graded(text, gold, True)
    assert verdict.reason.endswith("(last-number fallback)"), verdict


def test_the_fallback_checks_stay_fast_on_hostile_text():
    hostile = ["$" * 100_000 + " 5.", " " * 100_000 + "= 5.", "{" * 50_000 + "5.", "3x + " * 20_000 + "= 5.",
               "Find 5. " * 20_000, "\\boxed{" * 20_000, "5 " + "\\sqrt " * 20_000 + "2.", "a" * 100_000 + " is 5."]
    start = time.monotonic()
    for text in hostile:
        grade_answer(text, "5")
    assert time.monotonic() - start < 2.0


def test_a_wrong_last_number_says_it_was_the_fallback_too():
    verdict = _graded("Therefore, the answer must be 12 apples in all.", "13", False)
    assert verdict.reason == "numeric-not-equal (last-number fallback)", verdict


# --- units: stripped only when the gold has none or the same one ----------------------------------------------------

@pytest.mark.parametrize(("pred", "gold"), [
    ("\\boxed{5pm}", "5am"),
    ("\\boxed{3 m}", "3 s"),
    ("\\boxed{12 cm}", "12 kg"),
    ("\\boxed{7 \\text{ hours}}", "7 \\text{ minutes}"),
    ("\\boxed{10 \\text{ km}}", "10 \\text{ m}"),
    ("\\boxed{12 \\text{ cm}^2}", "12 \\text{ cm}"),
    ("\\boxed{5 \\text{ apples}}", "5 \\text{ oranges}"),
    ("\\boxed{20 \\text{ m/s}}", "20 \\text{ km/h}"),
    ("\\boxed{25^\\circ \\text{C}}", "25^\\circ \\text{F}"),
    ("The answer is 4:30 p.m.", "4:30 a.m."),
    ("\\boxed{9 \\text{ dollars}}", "9 \\text{ cents}"),
])
def test_a_different_unit_is_a_different_answer(pred, gold):
    verdict = _graded(pred, gold, False)
    assert verdict.reason.startswith("unit-mismatch"), verdict


@pytest.mark.parametrize(("pred", "gold"), [
    ("\\boxed{12 cm}", "12"),
    ("\\boxed{12}", "12 \\text{ cm}"),
    ("\\boxed{12 \\text{ centimeters}}", "12 \\text{ cm}"),
    ("\\boxed{7 hours}", "7 \\text{ hours}"),
    ("\\boxed{5 \\text{ p.m.}}", "5pm"),
    ("\\boxed{10 \\text{ cm}^2}", "10 \\text{ square centimeters}"),
    ("\\boxed{9.8 \\text{ m/s}^2}", "9.8 \\text{ m s}^{-2}"),
    ("\\boxed{90 \\text{ degrees}}", "90^\\circ"),
])
def test_the_same_unit_or_none_on_the_gold_is_stripped(pred, gold):
    _graded(pred, gold, True)


# --- a stated inequality is not its right-hand value ----------------------------------------------------------------

@pytest.mark.parametrize(("pred", "gold"), [
    ("Hence $-9 > 0$, which is false.", "0"),
    ("We get -9 > 0, a contradiction.", "0"),
    ("So the condition is x < 3.", "3"),
    ("Thus we need n \\geq 4.", "4"),
    ("Since 7 \\neq 0, we are done.", "0"),
    ("\\boxed{-9 > 0}", "0"),
    ("\\boxed{x \\geq 2}", "2"),
    ("The answer is $x > 5$.", "5"),
    ("The answer is -9 > 0", "0"),
])
def test_an_inequality_is_not_its_bound(pred, gold):
    _graded(pred, gold, False)


# --- correct answers that must be accepted --------------------------------------------------------------------------

@pytest.mark.parametrize(("pred", "gold"), [
    ("\\boxed{5 \\text{ rad/s}}", "5"),
    ("\\boxed{3 \\, \\text{m/s}}", "3"),
    ("\\boxed{18 \\text{ g/mol}}", "18"),
    ("\\boxed{25^\\circ \\text{C}}", "25"),
    ("\\boxed{25 \\text{ degrees C}}", "25"),
    ("\\boxed{1.5 \\text{ Å}}", "1.5"),
    ("\\boxed{1.5 \\, \\AA}", "1.5"),
    ("\\boxed{1.5 \\text{ Angstrom}}", "1.5"),
    ("\\boxed{9.8 \\text{ m/s}^2}", "9.8"),
    ("\\boxed{4 \\text{ m}^{-2}}", "4"),
    ("\\boxed{4 m⁻²}", "4"),
    ("\\boxed{2 \\text{ kg m}^2\\text{s}^{-1}}", "2"),
    ("\\boxed{6.02 \\text{ J/(mol K)}}", "6.02"),
    ("\\boxed{0.5 \\mathrm{mol/L}}", "0.5"),
    ("\\boxed{300 \\text{ K}}", "300"),
    ("\\boxed{3.2 \\times 10^{-19} \\text{ J}}", "3.2e-19"),
])
def test_units_inside_the_box_are_accepted(pred, gold):
    _graded(pred, gold, True)


@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("\\boxed{4.5\\times10^{33}}", "4.5e33", True),
    ("\\boxed{0.001}", "1e-3", True),
    ("\\boxed{10^{-3}}", "1e-3", True),
    ("\\boxed{1.2 \\times 10^{5}}", "1.2E+05", True),
    ("\\boxed{6.022 \\cdot 10^{23}}", "6.022e23", True),
    ("\\boxed{4.5e33}", "4.5 \\times 10^{33}", True),
    ("\\boxed{4.5\\times10^{32}}", "4.5e33", False),
    ("\\boxed{0.01}", "1e-3", False),
])
def test_e_notation_golds(pred, gold, correct):
    _graded(pred, gold, correct)


def test_parse_number_reads_e_notation_and_powers_of_ten_exactly():
    assert parse_number("4.5e33")[0] == 45 * 10**32
    assert parse_number("1e-3")[0] == parse_number("0.001")[0] == parse_number("10^{-3}")[0]
    assert parse_number("3\\times10^{-3}")[0] == parse_number("0.003")[0]
    assert parse_number("2e") is None  # Euler's number times two, not a number in e-notation


@pytest.mark.parametrize("line", [
    "C = \\$675 \\]", "\\[ C = \\$675 \\]", "C = \\$675", "- 675", "* 675", "- **675**", "• \\$675", "\\$675 \\]",
])
def test_a_finished_answer_on_a_bullet_or_display_line_reads_finished(line):
    assert reads_finished("The costs add up.\n" + line)


@pytest.mark.parametrize(("text", "gold"), [
    ("**Final Answer**\n- 675", "675"),
    ("The total cost:\n\n* 675", "675"),
    ("Adding both costs:\n\n• \\$675", "675"),
    ("We add the two costs, each on its own line, and carry the sum through the display below; the lines are long so "
     "that the display starts well before the end of the response.\n\\[\n\\text{first} = \\$450, \\quad \\text{second}"
     " = \\$225, \\quad \\text{and with everything that goes into the total written out at length here} \\\\\n"
     "C = \\$675 \\]", "675"),
])
def test_a_finished_answer_on_a_bullet_or_display_line_pays(text, gold):
    _graded(text, gold, True)


@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("\\boxed{E = \\frac{hc}{\\lambda} = 1.55 \\text{ eV}}", "1.55", True),
    ("E = 1240 / 800 = 1.55 eV", "1.55", True),
    ("The energy is $E = \\frac{hc}{\\lambda} = 1.55 \\text{ eV}$.", "1.55", True),
    ("\\boxed{v = \\frac{d}{t} = \\frac{100}{20} = 5 \\text{ m/s}}", "5", True),
    ("\\boxed{\\text{Total} = 450 + 225 = 675}", "675", True),
    ("Thus, 5 + 7 = 12.", "12", True),
    ("\\boxed{E = \\frac{hc}{\\lambda} = 1.55 \\text{ eV}}", "1.5", False),
    ("\\boxed{E = \\frac{hc}{\\lambda} = 1.55 \\text{ eV}}", "1.55 \\text{ J}", False),  # its unit too
])
def test_an_equation_chain_is_compared_by_its_last_value(pred, gold, correct):
    _graded(pred, gold, correct)


@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("The value is 3 \\times 10^{-3}.", "0.003", True),
    ("The value is 3 \\times 10^{-3}.", "-3", False),
    ("So the concentration is 3×10^-3 mol/L.", "0.003", True),
    ("So the concentration is 3×10^-3 mol/L.", "-3", False),
    ("\\boxed{3\\times10^{-3}\\text{ M}}", "0.003", True),
    ("\\boxed{3\\times10^{-3}\\text{ M}}", "-3", False),
    ("Therefore the rate is 2.5 \\cdot 10^{-4} per second.", "2.5e-4", True),
])
def test_scientific_notation_is_not_read_as_its_exponent(pred, gold, correct):
    _graded(pred, gold, correct)


@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("so \\boxed{42}. The final answer is boxed as requested.", "42", True),
    ("\\boxed{7}\n\nThe final answer is shown in the box above.", "7", True),
    ("$\\boxed{\\frac{1}{2}}$. The final answer is given above.", "1/2", True),
    ("\\boxed{5}. Wait, I made an error. The final answer is 6.", "6", True),  # a stated answer still overrides
    ("\\boxed{5}. Wait, I made an error. The final answer is 6.", "5", False),
])
def test_a_prose_sentence_is_never_chosen_over_the_box(pred, gold, correct):
    _graded(pred, gold, correct)


@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("\\boxed{a=-2, b=-2}", "-2,-2", True),
    ("\\boxed{a = 1, b = 3}", "1, 3", True),
    ("\\boxed{x = 2, y = -3}", "2, -3", True),
    ("\\boxed{p = \\frac{1}{2}; q = 4}", "\\frac{1}{2}, 4", True),
    ("\\boxed{a=-2, b=2}", "-2,-2", False),
])
def test_named_values_against_a_list_of_values(pred, gold, correct):
    _graded(pred, gold, correct)


@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("\\boxed{3, 5}", "[3, 5]", True),
    ("The solutions are 3 and 5, so \\boxed{3, 5}", "[3,5]", True),
    ("\\boxed{[3, 5]}", "[3, 5]", True),
    ("\\boxed{3, 6}", "[3, 5]", False),
    ("\\boxed{(3, 5)}", "[3, 5]", False),  # an open interval is not the list (nor the closed interval)
])
def test_a_list_gold(pred, gold, correct):
    _graded(pred, gold, correct)


@pytest.mark.parametrize(("answer", "value", "unit"), [
    ("9.8 \\text{ m/s}^2", "9.8", "m s^-2"),
    ("4 m⁻²", "4", "m^-2"),
    ("6.02 \\text{ J/(mol K)}", "6.02", "J K^-1 mol^-1"),
    ("25^\\circ \\text{C}", "25", "°C"),
    ("12 \\text{ centimeters}", "12", "cm"),
    ("5pm", "5", "pm"),
    ("2x", "2x", None),  # a variable, not a unit
    ("2 \\sqrt{3}", "2 \\sqrt{3}", None),
    ("10 \\text{ and } 12", "10 \\text{ and } 12", None),
])
def test_split_unit(answer, value, unit):
    assert split_unit(answer) == (value, unit)


# --- a bare number with a unit word keeps its unit (it was read as prose around a number) ---------------------------

@pytest.mark.parametrize(("pred", "gold"), [
    ("7 hours", "7 minutes"),
    ("3 kPa", "3 MPa"),
    ("4 days", "4 weeks"),
    ("10 mph", "10 km/h"),
    ("12 seconds", "12 minutes"),
    ("5 kilograms", "5 g"),
    ("Answer: 20 liters", "20 mL"),
])
def test_a_bare_quantity_keeps_its_unit(pred, gold):
    verdict = _graded(pred, gold, False)
    assert verdict.reason.startswith("unit-mismatch"), verdict


@pytest.mark.parametrize(("pred", "gold"), [
    ("7 hours", "7 h"),
    ("3 kPa", "3"),
    ("4 days", "4"),
    ("Soucis : 2,74 $ a payer", "2.74"),  # prose around a number still gives the number
])
def test_a_bare_quantity_in_the_golds_unit_or_none_pays(pred, gold):
    _graded(pred, gold, True)


# --- SI prefixes spelled out are the prefixed symbol ----------------------------------------------------------------

@pytest.mark.parametrize(("answer", "unit"), [
    ("10 kilopascals", "kPa"),
    ("2.5 microfarads", "μF"),
    ("3 gigahertz", "GHz"),
    ("4 megajoules", "MJ"),
    ("6 nanoseconds", "ns"),
    ("7 milliamperes", "mA"),
    ("8 kilowatts", "kW"),
    ("9 megapascal", "MPa"),
])
def test_prefix_words_are_prefixed_symbols(answer, unit):
    assert split_unit(answer)[1] == unit


@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("2.5 microfarads", "2.5 μF", True),
    ("10 kilopascals", "10 kPa", True),
    ("3 gigahertz", "3 GHz", True),
    ("3 megahertz", "3 GHz", False),
    ("2.5 millifarads", "2.5 μF", False),
    ("10 kilopascals", "10 Pa", False),  # a unit that differs is never converted
])
def test_prefix_words_against_symbols(pred, gold, correct):
    _graded(pred, gold, correct)


# --- a gold's attached unit letter, read against the unit the prediction names ----------------------------------------

@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("0.6400 N", "0.64N", True),
    ("\\boxed{0.64 \\text{ N}}", "0.64N", True),
    ("5 J", "5J", True),
    ("0.64", "0.64N", False),  # the gold's unit is not dropped for a bare number
    ("0.64 J", "0.64N", False),
    ("0.65 N", "0.64N", False),
    ("2 N", "2N", True),
])
def test_an_attached_gold_unit_read_against_the_predictions(pred, gold, correct):
    _graded(pred, gold, correct)


# --- an equation whose left side is a named quantity with a LaTeX subscript or a Greek name ---------------------------

@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("\\frac{ q_{0} }{ \\sqrt{2 C L}  }", "$I_{\\max }=\\frac{q_{0}}{\\sqrt{2 L C}}$", True),
    ("\\frac{q_0}{\\sqrt{2LC}}", "I_{\\max} = \\frac{q_0}{\\sqrt{2 L C}}", True),
    ("\\frac{q_0}{\\sqrt{LC}}", "I_{\\max} = \\frac{q_0}{\\sqrt{2 L C}}", False),
    ("\\frac{1}{2}", "\\theta = \\frac{1}{2}", True),
    ("\\frac{1}{3}", "\\theta = \\frac{1}{2}", False),
    ("v_{\\text{avg}} = 12", "12", True),
    ("v_{\\text{avg}} = 13", "12", False),
])
def test_a_named_quantity_on_the_left_is_compared_by_its_value(pred, gold, correct):
    _graded(pred, gold, correct)


# --- the factorial of a symbolic expression is not explosive; of a huge number it is ----------------------------------

@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("\\frac{n!}{k!(n-k)!}", "\\frac{(n-1)!}{k!} \\frac{n}{(n-k)!}", True),
    ("(n+1)!", "(n+1) n!", True),
    ("(n+1)!", "n!", False),
    ("{k+1}!", "(k+1)!", True),
])
def test_a_symbolic_factorial_is_compared(pred, gold, correct):
    _graded(pred, gold, correct)


@pytest.mark.parametrize("pred", ["(10^{10})!", "(2^{100})!", "{10^{9}}!", "(99999)!"])
def test_a_huge_numeric_factorial_is_refused(pred):
    verdict = _graded(pred, "5", False)
    assert verdict.reason.startswith("refused: huge-factorial"), verdict


# --- Unicode mathematics is the LaTeX it stands for -------------------------------------------------------------------

@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("E = mc²", "E = mc^2", True),
    ("E = mc³", "E = mc^2", False),
    ("KE = ½mv²", "KE = \\frac{1}{2}mv^2", True),
    ("√9", "3", True),
    ("√9", "4", False),
    ("2√2", "2\\sqrt{2}", True),
    ("√3/2", "\\frac{\\sqrt{3}}{2}", True),
    ("x₁ + x₂", "x_1 + x_2", True),
    ("¾", "0.75", True),
    ("⅓", "0.3333", False),  # a rounded decimal is still not the fraction
    ("6 × 10⁻³ m/s²", "0.006", True),
    ("x²", "x^3", False),
])
def test_unicode_mathematics(pred, gold, correct):
    _graded(pred, gold, correct)


# --- words of certainty between an answer phrase and its answer -------------------------------------------------------

@pytest.mark.parametrize(("pred", "gold", "correct", "extracted"), [
    ("I think the answer is definitely \\(8000\\).", "8000", True, "8000"),
    ("The answer is indeed 6.", "6", True, "6"),
    ("So the answer is clearly $\\frac{1}{2}$.", "\\frac{1}{2}", True, "\\frac{1}{2}"),
    ("The answer is indeed 7.", "6", False, "7"),
    ("Therefore the final answer is simply 12.", "12", True, "12"),
])
def test_words_of_certainty_before_the_answer(pred, gold, correct, extracted):
    assert _graded(pred, gold, correct).extracted == extracted  # the answer alone, without the adverb


# --- a formula with Greek letters is a formula, not prose around its only number --------------------------------------

@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("ΔxΔp ≥ ℏ/2", "ΔxΔp ≥ ℏ/2", True),
    ("ΔxΔp ≥ ℏ/2", "2", False),
    ("λ = h/p", "λ = h/p", True),
    ("θ = 2π/3", "\\frac{2\\pi}{3}", True),
    ("Le résultat final est 42", "42", True),  # prose in another language still gives its number
])
def test_greek_letters_are_symbols_not_words(pred, gold, correct):
    _graded(pred, gold, correct)


# --- an answer phrase followed by reasoning that was cut off is not the final answer --------------------------------

CUT_AFTER_THE_PHRASE = [
    ("So the answer is 11.\n\nWait, let me double-check the count.\n\nApproximating \\( \\sqrt{120", "11"),
    ("I think the answer is -125.\n\nBut let me verify with the binomial theorem:\n\nIn this case, we need:", "-125"),
    ("Thus the answer is 1/2.\n\nHmm, let me recompute the area.\nFirst integral: 2x dx +", "\\frac{1}{2}"),
    ("The final answer is 7\nActually, let me reconsider the second case, where n is", "7"),
]


@pytest.mark.parametrize(("text", "gold"), CUT_AFTER_THE_PHRASE)
def test_a_phrase_followed_by_cut_off_reasoning_is_no_answer(text, gold):
    verdict = _graded(text, gold, False)
    assert verdict.extracted is None and verdict.reason.startswith("unfinished-text (the reasoning after"), verdict


@pytest.mark.parametrize(("text", "gold"), [
    ("So the answer is 11.\n\nLet me double-check: the count is right.", "11"),  # more reasoning, but finished
    ("The answer is 5", "5"),  # the phrase is the last line
    ("Work.\nThe final answer is 12\n", "12"),
    ("So the answer is 11.\n\nChecking again, 11 works.\n\nTherefore 11 is correct.", "11"),
])
def test_a_phrase_in_a_finished_response_or_on_its_last_line_pays(text, gold):
    _graded(text, gold, True)


# --- mathematics typed as a program would: x**2, sin(pi/2), exp(0) ---------------------------------------------------

@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("(x+1)**2", "x^2 + 2x + 1", True),
    ("(x+1)**2", "x^2 + 1", False),
    ("x ** 3", "x^3", True),
    ("2**10", "1024", True),
    ("2**10", "1000", False),
    ("sin(pi/2)", "1", True),
    ("sin(pi/3)", "1", False),
    ("exp(0)", "1", True),
    ("cos(0)", "1", True),
    ("pi + 1", "\\pi + 1", True),
    ("2pi", "2\\pi", True),
    ("3pi", "2\\pi", False),
    ("The answer is **5** apples.", "5", True),  # bold, not a power
    ("**90**", "90", True),
])
def test_program_style_mathematics(pred, gold, correct):
    _graded(pred, gold, correct)


@pytest.mark.parametrize("answer", ["2pi", "3 sin(x)", "4 log(2)"])
def test_a_mathematical_word_after_a_number_is_not_a_unit(answer):
    assert split_unit(answer)[1] is None


# --- a repeating decimal is its fraction; a truncated one is not ------------------------------------------------------

@pytest.mark.parametrize(("pred", "gold", "correct"), [
    ("0.333...", "\\frac{1}{3}", True),
    ("0.333...", "1/3", True),
    ("0.1666...", "\\frac{1}{6}", True),
    ("0.142857142857...", "\\frac{1}{7}", True),
    ("0.1\\overline{6}", "\\frac{1}{6}", True),
    ("-1.1\\overline{6}", "-\\frac{7}{6}", True),
    ("0.333...", "\\frac{1}{6}", False),
    ("3.14159...", "\\pi", False),  # truncated, not repeating: a rounded decimal is not the number
    ("0.333", "\\frac{1}{3}", False),
    ("0.333...", "0.3", False),
])
def test_a_repeating_decimal_is_its_fraction(pred, gold, correct):
    _graded(pred, gold, correct)
