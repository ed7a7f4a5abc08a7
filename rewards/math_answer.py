"""Math answer equivalence: is a completion's final answer equal to the gold answer?

`grade_answer` is the one entry point. It is a plain function that may use a lot
of time on hostile input (sympy, math-verify), so the rewards call it inside the worker
pool (`rewards.pool`), where a hard kill bounds it. It never raises.

Decision ladder (first conclusive step wins):

1. extract the prediction's final answer (`rewards.extract.extract_answer`);
   the gold is extracted too when it is a full solution (`\\boxed` or `####`);
2. normalise both strings; equal strings are equal answers;
3. both plain numbers (integers, decimals, fractions, `\\frac`): exact rational
   comparison (`0.3333` is not 1/3), a relative tolerance of 1e-6 only against a decimal
   gold (see `REL_TOL`); a percentage on one side matches as its number or its quantity
   (`10\\%` is 10 and 0.1); AIME style leading zeros (`033`) are the same integer;
4. equations: `x = 3` against `3` compares the right-hand side;
5. otherwise math-verify / latex2sympy2_extended parse both sides (sets, tuples,
   intervals, matrices, symbolic expressions) and math-verify decides equality with
   sympy; its few known wrong verdicts are corrected before (see `_guard`).

An answer found only by the last-number fallback is no answer when the text does not read as
finished (`rewards.extract.reads_finished`: a response cut off mid-reasoning): the verdict
is wrong, with nothing extracted (so it casts no vote in maj@k), reason
`unfinished-text (last number '7' is not an answer)`. Nor is an answer phrase that more reasoning
followed before the cut (`unfinished-text (the reasoning after '11' was cut off)`).

Expressions whose evaluation could explode (power towers, huge factorials, very long
answers) are refused before sympy sees them: the verdict is then a string comparison
only, with the reason saying so.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, asdict
from fractions import Fraction

from rewards.extract import (MAX_ANSWER_CHARS, extract_answer, find_last_boxed, last_number_refusal, normalize_answer,
                             reads_finished, reasoning_after_the_phrase, reasoning_left_open)
from rewards.units import split_unit, units_agree

__all__ = ["Verdict", "grade_answer", "parse_number"]

# Numbers are compared exactly (as rationals) whenever both sides are exact: integers, fractions and decimals as
# written ("0.5" is exactly 1/2; "0.3333" is 3333/10000, not 1/3). A rounded decimal for an exact fraction is a
# wrong answer, however many digits it has. Only a gold written as a decimal may itself be a rounded value
# (a computed constant, "1.414214"), so only against a decimal gold does a relative tolerance apply: 1e-6 of the
# larger magnitude. That is below any rounding a problem asks for (a "nearest thousandth" answer differs from
# its neighbours by far more) and above the last-digit noise of a float printed to 15-17 significant digits
# ("0.30000000000000004" is 0.3), which is all it is meant to forgive. Irrational golds ("\sqrt{2}", "\pi")
# are not plain numbers: math-verify compares them with its own numeric precision.
REL_TOL = Fraction(1, 10**6)


@dataclass
class Verdict:
    """The outcome of grading one answer, with enough detail to log why.

    Attributes:
        correct: True when the answer is judged equal to the gold.
        extracted: The answer string extracted from the prediction (None if none).
        gold_parsed: How the gold was understood (a normalised string or sympy form).
        pred_parsed: How the prediction was understood.
        reason: A short machine-greppable reason, e.g. `"numeric-equal"`,
            `"no-answer"`, `"timeout"`, `"memory"`, `"mv-not-equal"`.
    """

    correct: bool
    extracted: str | None = None
    gold_parsed: str | None = None
    pred_parsed: str | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        """The verdict as a plain dict (for JSON logs)."""
        return asdict(self)

    def summary(self) -> str:
        """One line for a human reading samples: the reason, what was extracted and how it compared.

        >>> Verdict(True, "0.50", "1/2", "1/2", "numeric-equal").summary()
        "numeric-equal: extracted '0.50' (parsed '1/2'), gold '1/2'"
        """
        if self.extracted is None:
            return self.reason
        parsed = f" (parsed {self.pred_parsed!r})" if self.pred_parsed not in (None, self.extracted) else ""
        return f"{self.reason}: extracted {self.extracted!r}{parsed}, gold {self.gold_parsed!r}"


# --- guards against expressions that explode -------------------------------------------

# a^{b^c}, a^b^c, a**b**c: a tower of exponents; 10^{10^{10}} alone has 10^10 digits.
_TOWER_RE = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\w+\s*\^|\*\*\s*\(?\s*\w+\s*\)?\s*\*\*")
_BIG_EXP_RE = re.compile(r"(?:\^|\*\*)\s*\{?\s*\(?\s*(\d{5,})")
# n! with n >= 1000, or n!!, or factorial(...); the factorial of a bracketed expression is `_numeric_group_factorial`.
_BIG_FACT_RE = re.compile(r"(\d{4,})\s*!|!\s*!|\\?factorial\s*[({]")
_GROUP_FACT_RE = re.compile(r"[)}]\s*!")
_LATEX_SIZING_RE = re.compile(r"\\(?:left|right|big|Big|cdot|times)")


def _numeric_group_factorial(s: str) -> bool:
    """Whether `s` takes the factorial of a bracketed expression without a symbol in it ((10^{10})!, {2^{100}}!).

    The factorial of an expression with a symbol in it ((n-1)!, {k+1}!) stays symbolic in sympy and is safe.
    """
    for match in _GROUP_FACT_RE.finditer(s):
        close, depth = match.start(), 0
        for i in range(close, -1, -1):
            depth += {")": 1, "}": 1, "(": -1, "{": -1}.get(s[i], 0)
            if depth == 0:
                if not re.search(r"[A-Za-z]", _LATEX_SIZING_RE.sub("", s[i + 1 : close])):
                    return True
                break
        else:
            return True  # unbalanced: refuse rather than guess
    return False


def _explosive(s: str) -> str | None:
    """Why evaluating `s` could take unbounded time or memory, or None if it is safe."""
    if len(s) > MAX_ANSWER_CHARS:
        return "answer-too-long"
    if _TOWER_RE.search(s):
        return "power-tower"
    if _BIG_EXP_RE.search(s):
        return "huge-exponent"
    if _BIG_FACT_RE.search(s) or _numeric_group_factorial(s):
        return "huge-factorial"
    if s.count("{") > 200 or s.count("(") > 200:
        return "too-deeply-nested"
    return None


# --- numbers ----------------------------------------------------------------------------

_INT_OR_DEC_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_FRAC_RE = re.compile(r"^([+-]?)\\frac\{?\s*([+-]?\d+)\s*\}?\{?\s*([+-]?\d+)\s*\}?$")
_SLASH_RE = re.compile(r"^([+-]?\d+)\s*/\s*([+-]?\d+)$")
_SCI_RE = re.compile(
    r"^([+-]?\d+(?:\.\d+)?)(?:\\times|\\cdot|\*|x|×|·)10\^(?:\{([+-]?\d{1,3})\}|\(([+-]?\d{1,3})\)|([+-]?\d{1,3}))$")
_POW10_RE = re.compile(r"^([+-]?)10\^(?:\{([+-]?\d{1,3})\}|\(([+-]?\d{1,3})\)|([+-]?\d{1,3}))$")
# e-notation as programs print floats ("4.5e33", "1E-03"): never Euler's number, which no digits follow.
_E_NOTATION_RE = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))[eE]([+-]?\d{1,3})$")


def parse_number(s: str) -> tuple[Fraction, bool] | None:
    """Parse a plain number exactly.

    Args:
        s: A normalised answer string.

    Returns:
        `(value, is_decimal)` or None when `s` is not a plain number. `is_decimal`
        says the value was written with a decimal point (so a tolerance applies).

    >>> parse_number("033")
    (Fraction(33, 1), False)
    >>> parse_number("\\\\frac{3}{4}")
    (Fraction(3, 4), False)
    >>> parse_number("1e-3")
    (Fraction(1, 1000), True)
    """
    s = s.replace(" ", "")
    if _INT_OR_DEC_RE.match(s):
        return Fraction(s), "." in s
    m = _FRAC_RE.match(s)
    if m and int(m.group(3)) != 0:
        value = Fraction(int(m.group(2)), int(m.group(3)))
        return (-value if m.group(1) == "-" else value), False
    m = _SLASH_RE.match(s)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2))), False
    s = s.replace("−", "-")
    m = _SCI_RE.match(s)
    if m:
        return Fraction(m.group(1)) * Fraction(10) ** int(next(g for g in m.groups()[1:] if g)), "." in m.group(1)
    m = _POW10_RE.match(s)
    if m:
        value = Fraction(10) ** int(next(g for g in m.groups()[1:] if g))
        return (-value if m.group(1) == "-" else value), False
    m = _E_NOTATION_RE.match(s)
    if m:  # a printed float: a decimal, as rounded as its digits
        return Fraction(m.group(1)) * Fraction(10) ** int(m.group(2)), True
    return None


def _numbers_equal(gold: tuple[Fraction, bool], pred: tuple[Fraction, bool]) -> bool:
    """Exact rational equality; against a decimal gold (possibly rounded) a relative tolerance of `REL_TOL`.

    >>> _numbers_equal(parse_number("\\\\frac{1}{2}"), parse_number("0.5"))
    True
    >>> _numbers_equal(parse_number("\\\\frac{1}{3}"), parse_number("0.3333"))
    False
    """
    if gold[0] == pred[0]:
        return True
    if gold[1]:
        return abs(gold[0] - pred[0]) <= REL_TOL * max(abs(gold[0]), abs(pred[0]))
    return False


# Percentages. "10%" is the quantity 0.1, and GSM8K/MATH write the gold of a "what percent" question as the
# percentage's number, 10. So a number with a percent sign on one side only matches the other side either as
# the same number ("10%" and 10: normalisation drops the sign) or as the same quantity ("10%" and 0.1, p% = p/100),
# in both directions (a gold "10\%" takes 10 and 0.1). With the sign on both sides the numbers must be equal.
# Both readings are accepted, so "1000%" also matches a gold 10 (as the quantity 10) and "100%" a gold 1.
_PERCENT_RE = re.compile(r"-?[\d.,\s]*\d\s*(?:%|percent)", re.IGNORECASE)


def _is_percent(s: str) -> bool:
    """True for a plain number with a percent sign or word: `10\\%`, `$10\\%$`, `10 percent`."""
    t = re.sub(r"\\text\s*\{\s*([^{}]*)\}", r"\1", s).replace("\\%", "%").replace("$", "").replace("**", "")
    return bool(_PERCENT_RE.fullmatch(t.strip().rstrip(".").strip()))


def _percent_as_quantity(gold: tuple[Fraction, bool], pred: tuple[Fraction, bool], gold_is_percent: bool):
    """`(gold, pred)` with the side that carried the percent sign divided by 100."""
    if gold_is_percent:
        return (gold[0] / 100, gold[1]), pred
    return gold, (pred[0] / 100, pred[1])


def _decimal_comma(s: str) -> str | None:
    """`1,22` -> `1.22` (a European decimal comma); None when `s` is not one."""
    m = re.fullmatch(r"(-?\d+),(\d+)", s)
    if not m or re.fullmatch(r"-?[1-9]\d{0,2},\d{3}", s):  # 1,000 is a thousands separator
        return None
    return f"{m.group(1)}.{m.group(2)}"


# Tuples, intervals and matrices of plain numbers are compared number by number with the rule for plain
# numbers ("(0.5, 2.25]" is "(\frac{1}{2}, \frac{9}{4}]"; "(0.6, 2.6667]" is not "(\frac{3}{5}, \frac{8}{3}]",
# as 2.6667 alone is not 8/3), when both sides have the same shape; anything else (sets in another order, symbols)
# is left to math-verify, which compares numbers exactly too.
_ELEMENT_RE = re.compile(r"-?\\frac\{\s*-?\d+\s*\}\{\s*-?\d+\s*\}|-?(?:\d+(?:\.\d*)?|\.\d+)(?:/\d+)?")
_SHAPE_RE = re.compile(r"(?:\s|[(),\[\];&#]|\\\\|\\[{}]|\\(?:begin|end)\{[pbv]?matrix\})*")
_WRAPPED_MATRIX_RE = re.compile(r"\(\s*(\\begin\{([pbv]?matrix)\}.*\\end\{\2\})\s*\)", re.S)


def _elementwise_equal(gold_n: str, pred_n: str) -> bool:
    """True when both are the same structure of plain numbers and every pair is equal as numbers."""
    shapes, elements = [], []
    for s in (gold_n, pred_n):
        m = _WRAPPED_MATRIX_RE.fullmatch(s.strip())
        s = m.group(1) if m else s
        shapes.append(re.sub(r"\s+", "", _ELEMENT_RE.sub("#", s)))
        elements.append(_ELEMENT_RE.findall(s))
    if shapes[0] != shapes[1] or not _SHAPE_RE.fullmatch(shapes[0]) or len(elements[0]) < 2:
        return False
    pairs = [(parse_number(g), parse_number(p)) for g, p in zip(*elements)]
    return all(g is not None and p is not None and _numbers_equal(g, p) for g, p in pairs)


# A named quantity on the left: x, f(x), v_0, I_{\max }, \theta_a, \omega(r).
_EQ_LHS_RE = re.compile(
    r"^\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{[^{}]*\}|_\w)?(?:\([A-Za-z]\))?\s*=(?!=)\s*(.+)$", re.S)


def _rhs_of_equation(s: str) -> str:
    """`x = 3` -> `3`; `f(x) = 2x` -> `2x`; `I_{\\max} = \\frac{q}{2}` -> `\\frac{q}{2}`; anything else unchanged."""
    m = _EQ_LHS_RE.match(s)
    return m.group(1).strip() if m and "=" not in m.group(1) else s


# --- what an answer states: the last value of a chain, the values of named parts --------------------------------------

_NAME_RE = re.compile(
    r"(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{[^{}]*\}|_\w|'|\^\{?\*\}?)*(?:\([^()=]*\))?"  # E, v_{avg}, f(x), \lambda
    r"|\\(?:text|textbf|mathrm|operatorname)\s*\{[^{}=]*\}(?:_\{[^{}]*\})?"  # \text{Total}
    r"|[A-Za-z][A-Za-z ]{1,30}"  # Total cost
)
_ARITHMETIC_RE = re.compile(r"[\d.,+\-*/()\[\]{}^×÷·$%\s]*\d[\d.,+\-*/()\[\]{}^×÷·$%\s]*")
_LATEX_ARITHMETIC_RE = re.compile(r"\\(?:d?frac|sqrt|cdot|times|div|left|right|\$|[,;!: ])")
_CONNECTIVE_RE = re.compile(r"^(?:so|thus|therefore|hence|then|finally)\b\s*,?\s*", re.IGNORECASE)
_PART_JOINER_RE = re.compile(r",|;|\\q?quad|\\text\s*\{\s*(?:and|or)\s*\}|\b(?:and|or)\b")


def _split_top_level(s: str, separator: str) -> list[str]:
    """`s` split at each `separator` (one character) outside braces and brackets; `=` never splits `<=`,
    `>=`, `==` or `!=`."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(s):
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif c == separator and depth == 0:
            if c == "=" and (s[i - 1 : i] in ("<", ">", "!", "=") or s[i + 1 : i + 2] == "="):
                continue
            parts.append(s[start:i])
            start = i + 1
    return parts + [s[start:]]


def _is_name(s: str) -> bool:
    return bool(_NAME_RE.fullmatch(s.strip()))


def _is_arithmetic(s: str) -> bool:
    return bool(_ARITHMETIC_RE.fullmatch(_LATEX_ARITHMETIC_RE.sub(" ", s)))


def _stated_value(answer: str) -> str:
    """What an answer states, for a gold that is a value (no `=`).

    Named values become the list of their values (`a=-2, b=-2` -> `-2, -2`), and an equation chain that starts
    from a name or from arithmetic becomes its last value (`E = \\frac{hc}{\\lambda} = 1.55 \\text{ eV}` ->
    `1.55 \\text{ eV}`). An equation with an unknown on its left (`3x + 5 = 20`) is not a value: unchanged.
    """
    s = re.sub(r"^\$+|\$+$|^\\\(|\\\)$|^\\\[|\\\]$", "", answer.strip()).strip()
    s = _CONNECTIVE_RE.sub("", s)  # "Thus, 5 + 7 = 12." states 12
    if "=" not in s or len(s) > MAX_ANSWER_CHARS:
        return answer
    items = [item for item in _split_top_level(_PART_JOINER_RE.sub(",", s), ",") if item.strip()]
    named = [_split_top_level(item, "=") for item in items]
    if len(items) >= 2 and all(len(parts) == 2 and _is_name(parts[0]) and parts[1].strip() for parts in named):
        return ", ".join(parts[1].strip() for parts in named)
    parts = _split_top_level(s, "=")
    if len(parts) < 2 or not parts[-1].strip() or not (_is_name(parts[0]) or _is_arithmetic(parts[0])):
        return answer
    if any(_PART_JOINER_RE.search(part) for part in parts[1:-1]):
        return answer  # "x = 2 or x = 3" is two answers, not a chain
    return parts[-1].strip()


_LIST_GOLD_RE = re.compile(r"\[([^\[\]]*,[^\[\]]*)\]")


# --- math-verify, inside the worker ---------------------------------------------------------


def _mv_timeouts() -> dict:
    """math-verify's own timeouts use signal.alarm, which only works in the main thread.

    In a pool worker (main thread) they give a fast soft limit below the pool's hard
    kill; elsewhere they are switched off and only the caller's limits apply.
    """
    if threading.current_thread() is threading.main_thread():
        return {"parsing_timeout": 3}, {"timeout_seconds": 3}
    return {"parsing_timeout": None}, {"timeout_seconds": None}


def _mv_verify(gold: str, pred: str) -> tuple[bool | None, str, str]:
    """math-verify on two answer strings; None when either side does not parse."""
    from math_verify import parse, verify  # lazy: 0.5 s to import, and `import rewards` takes 0.06 s without it

    parse_kw, verify_kw = _mv_timeouts()
    gold_p = parse(f"${gold}$", **parse_kw)
    if not gold_p:
        gold_p = parse(f"\\boxed{{{gold}}}", **parse_kw)
    pred_p = parse(f"\\boxed{{{pred}}}", **parse_kw)
    if not pred_p:
        pred_p = parse(f"${pred}$", **parse_kw)
    gold_s = str(gold_p[0]) if gold_p else None
    pred_s = str(pred_p[0]) if pred_p else None
    if not gold_p or not pred_p:
        return None, gold_s, pred_s
    return bool(verify(gold_p, pred_p, **verify_kw)), gold_s, pred_s


def _gold_answer(gold: str) -> str:
    """A gold that is a full solution (boxed or ####) is reduced to its answer."""
    if "\\boxed" in gold or "\\fbox" in gold:
        # Read as a prediction is: the final run of boxes joined by connectors ("\boxed{1} and \boxed{2}" is
        # "1, 2"; in "\boxed{1} no no no \boxed{2}" the answer is 2), as math-verify's and lighteval's tests expect.
        return find_last_boxed(gold) or gold
    if "####" in gold or len(gold) > 200:  # a worked solution, not an answer
        return extract_answer(gold)[0] or gold
    return gold


def grade_answer(pred_text: object, gold: object) -> Verdict:
    """Grade one completion's final answer against the gold answer.

    Args:
        pred_text: The completion text (anything else is graded 0 with a reason).
        gold: The gold answer: a bare answer (`"18"`, `"\\\\frac{1}{2}"`) or a
            solution containing `\\boxed{}` or `####`; numbers are accepted.

    Returns:
        A `Verdict`. Never raises.

    >>> grade_answer("so the answer is \\\\boxed{033}", "33").correct
    True
    """
    try:
        return _grade(pred_text, gold)
    except RecursionError:
        return Verdict(False, reason="too-deeply-nested")
    except MemoryError:
        return Verdict(False, reason="memory")
    except Exception as exc:  # noqa: BLE001 - a reward must never raise; the reason keeps it visible
        return Verdict(False, reason=f"error: {type(exc).__name__}: {str(exc)[:200]}")


def _grade(pred_text: object, gold: object) -> Verdict:
    if isinstance(gold, (int, float, Fraction)) and not isinstance(gold, bool):
        gold = str(gold)
    if not isinstance(gold, str) or not gold.strip():
        return Verdict(False, reason="no-gold")
    if not isinstance(pred_text, str):
        return Verdict(False, reason=f"bad-input: {type(pred_text).__name__}")
    if not pred_text.strip():
        return Verdict(False, reason="empty")
    extracted, how = extract_answer(pred_text)
    if how == "unclosed_box":
        # "\boxed{5" at the end: the response was cut off while writing its answer, and no answer is there.
        return Verdict(False, reason="unfinished-text (unclosed \\boxed{: no answer)")
    if extracted is None:
        return Verdict(False, reason="no-answer")
    if how == "last_number":
        # A response cut off mid-reasoning states no answer: its last number is wherever the cut fell, so it is
        # neither paid nor counted as an answer (no vote in maj@k either). Nor is a number that the response does
        # not state as its answer (a list marker, a heading, an unsolved equation's right-hand side, an echo).
        if not reads_finished(pred_text):
            return Verdict(False, reason=f"unfinished-text (last number {extracted!r} is not an answer)")
        refusal = last_number_refusal(pred_text)
        if refusal:
            return Verdict(False, reason=f"no-answer (last number {extracted!r} is {refusal})")
    if how == "phrase" and not reads_finished(pred_text) and reasoning_after_the_phrase(pred_text):
        # "... so the answer is 11. Let me check: ... Approximating \sqrt{120" was cut off while still working: the
        # phrase was an intermediate claim, not the response's final answer.
        return Verdict(False, reason=f"unfinished-text (the reasoning after {extracted!r} was cut off)")
    if how in ("bare", "last_math") and reasoning_left_open(pred_text):
        # "<think>\n20}." is unfinished reasoning, not a bare answer "20}." (seen on the demo policy's GSM8K outputs)
        return Verdict(False, reason=f"unfinished-text (reasoning left open; {extracted!r} is not an answer)")
    verdict = _judge(extracted, how, _gold_answer(gold.strip()))
    if how == "last_number":
        verdict.reason = verdict.reason.replace(" (last_number)", "") + " (last-number fallback)"
    return verdict


def _judge(extracted: str, how: str, gold_ans: str) -> Verdict:
    """Compare an extracted answer (found by rule `how`) with the gold's answer."""
    pred = _stated_value(extracted) if "=" not in gold_ans else extracted
    tag = f"-rhs ({how})" if pred != extracted else f" ({how})"  # compared by its right-hand side, or whole
    (gold_value, gold_unit), (pred_value, pred_unit) = split_unit(gold_ans), split_unit(pred)
    if pred_unit and not gold_unit and split_unit(gold_ans, any_attached=True)[1] == pred_unit:
        gold_value, gold_unit = split_unit(gold_ans, any_attached=True)  # "0.64N" read against "0.6400 N": newtons
    if gold_unit and pred_unit and not units_agree(gold_unit, pred_unit):
        return Verdict(False, extracted=extracted, gold_parsed=f"{gold_value} {gold_unit}",
                       pred_parsed=f"{pred_value} {pred_unit}",
                       reason=f"unit-mismatch ({pred_unit} against the gold's {gold_unit})")
    gold_ans, pred = gold_value, pred_value  # the unit stripped: the gold has none or the same
    gold_n, pred_n = normalize_answer(gold_ans), normalize_answer(pred)
    list_gold = _LIST_GOLD_RE.fullmatch(gold_n)
    if list_gold and re.fullmatch(r"[^\[\](){}\\]*,[^\[\](){}\\]*", pred_n):  # "[3, 5]" against the bare list "3, 5"
        gold_n = list_gold.group(1).strip()
    verdict = Verdict(False, extracted=extracted, gold_parsed=gold_n, pred_parsed=pred_n)
    if not pred_n:
        verdict.reason = "empty-answer"
        return verdict
    if gold_n == pred_n:
        verdict.correct, verdict.reason = True, f"string-equal{tag}"
        return verdict
    # Equations: compare right-hand sides unless both sides are equations.
    if ("=" in gold_n) != ("=" in pred_n):
        gold_n, pred_n = _rhs_of_equation(gold_n), _rhs_of_equation(pred_n)
        if gold_n == pred_n:
            verdict.correct, verdict.reason = True, f"string-equal-rhs ({how})"
            return verdict
    # 1,22 against 1.22: a decimal comma, decided only against a decimal point.
    if "." in gold_n and _decimal_comma(pred_n):
        pred_n = _decimal_comma(pred_n)
    elif "." in pred_n and _decimal_comma(gold_n):
        gold_n = _decimal_comma(gold_n)
    gold_num, pred_num = parse_number(gold_n), parse_number(pred_n)
    if gold_num is not None and pred_num is not None:
        verdict.gold_parsed, verdict.pred_parsed = str(gold_num[0]), str(pred_num[0])
        verdict.correct = _numbers_equal(gold_num, pred_num)
        verdict.reason = "numeric-equal" if verdict.correct else "numeric-not-equal"
        if not verdict.correct and _is_percent(gold_ans) != _is_percent(pred) and _numbers_equal(
                *_percent_as_quantity(gold_num, pred_num, gold_is_percent=_is_percent(gold_ans))):
            verdict.correct, verdict.reason = True, "numeric-equal (percent)"
        return verdict
    danger = _explosive(pred_n) or _explosive(gold_n)
    if danger:
        verdict.reason = f"refused: {danger} (string comparison only)"
        return verdict
    if gold_num is not None and re.fullmatch(r"[A-Za-z\s]+", pred_n):
        verdict.reason = "numeric-gold-word-answer"
        return verdict
    if _elementwise_equal(gold_n, pred_n):
        verdict.correct, verdict.reason = True, "numeric-equal-elementwise"
        return verdict
    equal, gold_s, pred_s = _mv_verify(gold_n, pred_n)
    if equal is None:  # normalisation may have removed what math-verify needs: try raw
        equal, gold_s, pred_s = _mv_verify(gold_ans, pred)
    verdict.gold_parsed = gold_s or gold_n
    verdict.pred_parsed = pred_s or pred_n
    if equal is None:
        verdict.reason = "unparseable"
    else:
        verdict.correct = equal
        verdict.reason = "sympy-equal" if equal else "sympy-not-equal"
    return verdict
