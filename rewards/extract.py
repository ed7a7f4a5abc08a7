"""Final-answer extraction and string normalisation for math completions.

Pure string work (no sympy), so it is cheap and safe to run anywhere. Equivalence
lives in `rewards.math_answer`, which builds on what is here.

Extraction order, first hit wins (each is searched for its *last* occurrence, since a
model may restate or correct itself):

1. `\\boxed{...}` / `\\fbox{...}` (nested braces; also `\\boxed 5`),
2. `#### N` (GSM8K),
3. "final answer is X", "the answer is X", "Answer: X", "A: X",
4. the final non-empty line (its last `$...$` span, else its last number).

The last number is extracted from any text (so that logs show what was read), but the grader
pays it only when the text reads as finished (`reads_finished`): a response cut off
mid-reasoning ends on whatever number the cut fell after.
"""

from __future__ import annotations

import re
from fractions import Fraction

from rewards.last_number import (CHAT_TOKEN_RE, ENDS_MID_EXPRESSION_RE, NUMBER_RE, UNFINISHED_EQUATION_RE, last_number,
                                 last_number_refusal, reads_finished, reasoning_left_open)
from rewards.units import split_unit

__all__ = ["extract_answer", "find_last_boxed", "normalize_answer", "completion_text", "reads_finished",
           "reasoning_left_open", "last_number_refusal", "reasoning_after_the_phrase", "MAX_ANSWER_CHARS"]

# An extracted answer longer than this is not an answer a grader should try to parse:
# it is garbage or a runaway box, and parsing it can only cost time.
MAX_ANSWER_CHARS = 1000

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_HASH_RE = re.compile(r"####\s*([^\n]+)")
_PHRASE_RE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*(.+)", re.IGNORECASE
)
_A_COLON_RE = re.compile(r"(?:^|\n)\s*A:\s*([^\n]+)")
_FINAL_RE = re.compile(r"final answer is", re.IGNORECASE)
# What may follow the last math span that is the answer: nothing, or "is the solution." / "is our answer."
_CLOSING_REMARK_RE = re.compile(
    r"[\s.]*(?:(?:is|are)\s+(?:the|our|my)?\s*(?:final\s+)?(?:answer|solution|result)s?[\s.!]*)?", re.IGNORECASE
)
_INLINE_MATH_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)


def completion_text(completion: object) -> str | None:
    """Return the text of a TRL completion: a string, or a chat message list.

    Args:
        completion: `"text"` or `[{"role": "assistant", "content": "text"}, ...]`.

    Returns:
        The text (the last assistant message's content for a chat list), or None when
        the value has no usable text.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content")
        return content if isinstance(content, str) else None
    if isinstance(completion, (list, tuple)) and completion:
        for message in reversed(completion):
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                content = message.get("content")
                return content if isinstance(content, str) else None
        return None
    return None


_BRACE_RE = re.compile(r"\\.|[{}]", re.S)


def _brace_partners(text: str) -> dict[int, int]:
    """Index of each `{` -> index of the `}` that closes it, in one pass (escaped `\\{`, `\\}` skipped)."""
    partners, open_at = {}, []
    for m in _BRACE_RE.finditer(text):
        c = m.group()
        if c == "{":
            open_at.append(m.start())
        elif c == "}" and open_at:
            partners[open_at.pop()] = m.start()
    return partners


def _scan_boxes(text: str) -> tuple[list[tuple[int, int, str]], int | None]:
    """All non-empty boxes as `(start, end, content)` in order, and where the last unclosed box starts (None if
    none): a `\\boxed{` whose brace never closes, or a `\\boxed` that ends the text."""
    boxes, unclosed, partners = [], None, None
    for match in _BOX_RE.finditer(text):
        start = match.end()
        if start < len(text) and text[start] == "{":
            partners = _brace_partners(text) if partners is None else partners
            end = partners.get(start)
            if end is None:  # the text stops inside the box: a truncated completion
                unclosed = match.start()
                continue
            content, end = text[start + 1 : end].strip(), end + 1
        else:  # \boxed 5
            m = re.match(r"([^\s$.,;]+)", text[start:])
            content, end = (m.group(1), start + m.end()) if m else ("", start)
            if not text[start:].strip():
                unclosed = match.start()
        if content:  # empty boxes are echoes of a prompt's "\boxed{}" instruction
            boxes.append((match.start(), end, content))
    return boxes, unclosed


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """All non-empty boxes as `(start, end, content)`, in order."""
    return _scan_boxes(text)[0]


# What may sit between boxes that together give one answer: "\boxed{1} and \boxed{2}".
# One word may precede the connector ("\boxed{1} papers and \boxed{2} bins"), and a \text may name the
# part ("\boxed{(3, 3)} \text{ for part (a) and } \boxed{(1, 1)}"); prose ("no no no", "thus but") may not.
_BOX_JOINER_RE = re.compile(
    r"^\s*(?:[A-Za-z]+\s+(?=and\b|or\b|,))?"
    r"(?:\s|,|;|\$|\\[()\[\]]|\\q?quad|\\text\{\s*(?:for\s+part\s*\(?[a-z0-9]\)?\s*)?(?:and|or)?\s*\}|\band\b|\bor\b"
    r"|[a-z]_?\{?\d?\}?\s*=)*$"
)


def find_last_boxed(text: str, join: bool = True) -> str | None:
    """Content of the last non-empty `\\boxed{...}` or `\\fbox{...}` in `text`.

    Args:
        text: The text to search.
        join: Join the final run of boxes separated only by connectors ("and",
            commas, `\\quad`) into one comma-separated answer, as models write
            several solutions as several boxes.

    Returns:
        The box's content (the joined run's, comma-separated), or None when `text` has no non-empty box.
    """
    boxes = _boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    while join and len(group) < len(boxes):
        prev = boxes[-len(group) - 1]
        if not _BOX_JOINER_RE.match(text[prev[1] : group[0][0]]):
            break
        group.insert(0, prev)
    return ", ".join(content for _, _, content in group)


# Words of certainty between an answer phrase and its answer: "the answer is indeed 6", "is definitely \\(8000\\)".
_CERTAINTY_RE = re.compile(
    r"^(?:(?:indeed|definitely|certainly|clearly|surely|actually|really|simply|just|still)\b[\s,]*)+", re.IGNORECASE)


def _strip_phrase_tail(answer: str) -> str:
    """Cut what follows an answer on its line: a sentence end, a trailing remark; and words of certainty before it."""
    answer = _CERTAINTY_RE.sub("", answer.strip())
    m = _INLINE_MATH_RE.search(answer)
    if m and m.start() < 3:  # "The answer is $\frac{1}{2}$." -> the math span
        return next(g for g in m.groups() if g is not None)
    answer = re.split(r"\.(?=\s|$)|\s+(?:because|since|so|which)\s", answer, maxsplit=1)[0].strip()
    if not _looks_like_bare_answer(answer):  # prose ("Jane started 3 hours ago"): its only number
        numbers = NUMBER_RE.findall(answer)
        if len(numbers) == 1:
            return numbers[0]
    return answer


# A number in prose, with a decimal comma ("2,74 $") or a thousands separator; CJK text around it is prose too.
_PROSE_NUMBER_RE = re.compile(r"(?<![A-Za-z\d.,])-?\d+(?:[.,]\d+)*(?:/\d+)?(?![\d])")
# Words that are mathematics written without a backslash ("2 sin x"), not prose.
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "lim", "max", "min", "gcd", "lcm", "mod",
               "det", "sqrt", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "and", "or", "pi", "inf"}


def _prose_number(text: str) -> str | None:
    """The only number of a short text that is prose around it ("Soucis : 2,74 $ a..", "比例为13/28"), else None.

    A number and its unit ("7 hours", "3 kPa") is a quantity, not prose: its unit stays, to be compared.
    """
    if split_unit(text)[1] is not None:
        return None
    # Greek letters are symbols ("ΔxΔp ≥ ℏ/2" is a formula), not the letters of a word
    words = re.findall(r"[^\W\d_]{3,}", re.sub(r"\\[A-Za-z]+|[\u0370-\u03ff]", " ", text))
    if not any(w.lower() not in _MATH_WORDS for w in words):
        return None
    numbers = _PROSE_NUMBER_RE.findall(text)
    return numbers[0] if len(numbers) == 1 else None


def _looks_like_bare_answer(text: str) -> bool:
    """A short text without prose: the whole text is the answer (e.g. `(x-2)(x+2)`)."""
    return len(text) <= 120 and not re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", "", text))


def _phrase_answer(text: str) -> str | None:
    """The answer an answer phrase states ("the final answer is X", "Answer: X"), the last one; None if none."""
    phrases = _PHRASE_RE.findall(text)
    if not phrases:
        return None
    answer = phrases[-1]
    for _ in range(3):  # "Final Answer: The final answer is $5$." nests phrases
        inner = _PHRASE_RE.findall(answer)
        if not inner:
            break
        answer = inner[-1]
    return _strip_phrase_tail(answer) or None


def reasoning_after_the_phrase(text: str) -> bool:
    """Whether lines of text follow the line of the last answer phrase ("the answer is 5" and then more reasoning).

    On a response that was cut off, such a phrase was not its final word: the model went on working.
    """
    phrases = list(_PHRASE_RE.finditer(CHAT_TOKEN_RE.sub(" ", text)))
    return bool(phrases) and bool(CHAT_TOKEN_RE.sub(" ", text)[phrases[-1].end() :].strip())


def _is_prose(answer: str) -> bool:
    """A phrase's "answer" that is a sentence about the answer ("boxed as requested", "shown above"), not one."""
    if re.search(r"\\boxed|\\fbox|\bbox(?:ed)?\b|\babove\b|\bbelow\b", answer, re.I):
        return True
    return not re.search(r"[\d\\=^_{}()<>]", answer) and len(re.findall(r"[^\W\d_]{2,}", answer)) >= 2


def extract_answer(text: str) -> tuple[str | None, str]:
    """Extract the final answer of a completion.

    A box left unclosed after the last closed one (`\\boxed{5` at the end of a truncated response) is no answer:
    `(None, "unclosed_box")`. An answer phrase after the last box overrides it only when it states an answer,
    not a sentence about the box ("The final answer is boxed as requested.").

    Args:
        text: The completion text.

    Returns:
        `(answer, how)`: the raw answer string (None when nothing was found) and
        which rule found it (`boxed`, `####`, `phrase`, `A:`, `bare`,
        `last_math`, `last_number`, `unclosed_box`, `none`).

    >>> extract_answer("so \\\\boxed{\\\\frac{1}{2}}.")
    ('\\\\frac{1}{2}', 'boxed')
    >>> extract_answer("48/2 = 24\\n#### 24")
    ('24', '####')
    """
    raw, text = text, CHAT_TOKEN_RE.sub(" ", text)
    boxes, unclosed = _scan_boxes(text)
    if unclosed is not None and (not boxes or unclosed > boxes[-1][0]):
        return None, "unclosed_box"
    if boxes:
        final_phrase = list(_FINAL_RE.finditer(text))
        if not (final_phrase and final_phrase[-1].start() > boxes[-1][1]):
            return find_last_boxed(text), "boxed"
        answer = _phrase_answer(text[final_phrase[-1].start():])
        if answer is None or _is_prose(answer):
            return find_last_boxed(text), "boxed"
        return answer, "phrase"
    hashes = _HASH_RE.findall(text)
    if hashes:
        return hashes[-1].strip(), "####"
    answer = _phrase_answer(text)
    if answer:
        return answer, "phrase"
    a_colon = _A_COLON_RE.findall(text)
    if a_colon:
        return a_colon[-1].strip(), "A:"
    # A bare answer is the whole text, or what follows the reasoning when the completion closed it.
    after_reasoning = raw.rpartition("</think>")[2]
    bare = CHAT_TOKEN_RE.sub(" ", after_reasoning) if after_reasoning.strip() and "</think>" in raw else text
    stripped = re.sub(r"^\s*(?:answer|réponse|solution)\s*:?", "", bare.strip(), flags=re.I).strip()
    if (stripped and _looks_like_bare_answer(stripped) and not UNFINISHED_EQUATION_RE.search(stripped)
            and not ENDS_MID_EXPRESSION_RE.search(stripped)):
        return _prose_number(stripped) or stripped, "bare"
    # The last math span, when the text ends with it ("... is $\\frac{1}{2}$.").
    spans = list(_INLINE_MATH_RE.finditer(text[-300:]))
    if spans and _CLOSING_REMARK_RE.fullmatch(text[-300:][spans[-1].end() :]):
        span = next(g for g in spans[-1].groups() if g is not None).strip()
        if span:
            return span, "last_math"
    number = last_number(text)
    if number is not None:
        return number, "last_number"
    return None, "none"


# --- normalisation -------------------------------------------------------------------

_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING_RE = re.compile(r"(?<!\\)\\[,;:! ]|\\q?quad|~")
_ORDINAL_RE = re.compile(r"\^\s*\{?\s*(?:\\(?:mathrm|text)\s*\{)?\s*(?:st|nd|rd|th)\s*\}?\s*\}?")
_UNIT_WORDS = (
    r"(?:units?|cm|mm|km|m|meters?|inches|inch|in|feet|foot|ft|miles?|hours?|hrs?|minutes?|mins?"
    r"|seconds?|secs?|days?|weeks?|months?|years?|dollars?|cents?|degrees?|deg|sq|square|cubic"
    r"|pounds?|lbs?|kg|g|grams?|liters?|litres?|ml|l|mph|km/h|people|students?|apples?"
    r"|percent|points?|times|ways?|cookies|eggs|books?|pages?)"
)
_TRAILING_UNIT_RE = re.compile(rf"^(-?[\d.,/]+)\s*(?:{_UNIT_WORDS}(?:\^?\{{?[23]\}}?)?\.?\s*)+$", re.I)
# "12 grade", "5 apples each": a number followed by words only (two letters or more,
# so that "5 x" stays an expression).
_TRAILING_WORDS_RE = re.compile(r"^(-?\d[\d,]*(?:\.\d+)?)\s+(?:[A-Za-z]{2,}[A-Za-z'.-]*\s*)+$")
# A first group with a leading zero is no thousands group: "0,111" is a decimal comma.
_THOUSANDS_RE = re.compile(r"^-?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$|^-?[1-9]\d{0,2}(?: \d{3})+$")


# Mathematics typed in Unicode, as models write it in plain text: the LaTeX it stands for. "mc²" is mc^{2}, "v₀" v_{0},
# "½" \frac{1}{2} (not after a digit: "1½" is a mixed number), "√(1-x)" \sqrt{1-x}.
_SUPERSCRIPT_RUN_RE = re.compile(r"[⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺]+")
_SUBSCRIPT_RUN_RE = re.compile(r"[₀₁₂₃₄₅₆₇₈₉]+")
_SCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺₀₁₂₃₄₅₆₇₈₉", "0123456789-+0123456789")
_VULGAR_FRACTIONS = {"½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5),
                     "⅗": (3, 5), "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅛": (1, 8), "⅜": (3, 8), "⅝": (5, 8),
                     "⅞": (7, 8)}
_VULGAR_RE = re.compile(rf"(?<!\d)[{''.join(_VULGAR_FRACTIONS)}]")
_ROOT_RE = re.compile(r"√\s*(?:\(([^()]*)\)|\{([^{}]*)\}|([\w.]+))")


# Mathematics typed as a program would ("(x+1)**2", "sin(pi/2)", "exp(0)"): the power before bold markers are removed,
# function names and pi as LaTeX commands, so that "sin" is the sine and not s times i times n.
# (x**2 or x ** 2; never "**5** apples", whose second pair closes the bold before a space)
_PYTHON_POWER_RE = re.compile(r"(?<=[\w)\]}])(?:\*\*|\s+\*\*\s+)(?=[\w({\-])")
_PLAIN_FUNCTION_RE = re.compile(r"(?<![A-Za-z\\])(sin|cos|tan|cot|sec|csc|arcsin|arccos|arctan|sinh|cosh|tanh|exp|ln|log)"
                                r"(?=\s*\()")
_PLAIN_PI_RE = re.compile(r"(?<![A-Za-z\\])pi(?![A-Za-z])")


def _plain_math_as_latex(s: str) -> str:
    """`(x+1)**2` -> `(x+1)^2`; `sin(pi/2)` -> `\\sin(\\pi/2)`; `exp(0)` -> `\\exp(0)`."""
    s = _PYTHON_POWER_RE.sub("^", s)
    s = _PLAIN_FUNCTION_RE.sub(lambda m: "\\" + m.group(1), s)
    return _PLAIN_PI_RE.sub(lambda m: "\\pi ", s)


# A repeating decimal: "0.333..." and "0.1\overline{6}" are 1/3 and 1/6; the repeat must be shown (written at least
# twice before "...": "3.14159..." is a truncated number, not a repeating one).
_DOTS_REPEAT_RE = re.compile(r"^(-?)(\d*)\.(\d*?)((\d+?)\5+)(?:\.\.\.|…|\\ldots|\\cdots|\\dots)$")
_OVERLINE_RE = re.compile(r"^(-?)(\d*)\.(\d*)\\overline\{(\d+)\}$")


def _repeating_decimal_as_fraction(s: str) -> str:
    """`0.333...` -> `\\frac{1}{3}`, `-1.1\\overline{6}` -> `-\\frac{7}{6}`; anything else unchanged."""
    m = _DOTS_REPEAT_RE.match(s)
    groups = (m.group(1), m.group(2), m.group(3), m.group(5)) if m else None
    m = _OVERLINE_RE.match(s) if groups is None else None
    groups = (m.group(1), m.group(2), m.group(3), m.group(4)) if m else groups
    if groups is None:
        return s
    sign, whole, fixed, block = groups
    # x = whole.fixed(block)(block)...: (whole fixed block - whole fixed) / (10^len(fixed) (10^len(block) - 1))
    value = Fraction(int(whole + fixed + block or 0) - int(whole + fixed or 0), 10 ** len(fixed) * (10 ** len(block) - 1))
    return f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}" if value.denominator != 1 else f"{sign}{value}"


def _unicode_math_as_latex(s: str) -> str:
    """Unicode superscripts, subscripts, vulgar fractions and square roots written as the LaTeX they stand for."""
    s = _SUPERSCRIPT_RUN_RE.sub(lambda m: "^{" + m.group().translate(_SCRIPT_DIGITS) + "}", s)
    s = _SUBSCRIPT_RUN_RE.sub(lambda m: "_{" + m.group().translate(_SCRIPT_DIGITS) + "}", s)
    s = _VULGAR_RE.sub(lambda m: "\\frac{{{}}}{{{}}}".format(*_VULGAR_FRACTIONS[m.group()]), s)
    return _ROOT_RE.sub(lambda m: "\\sqrt{" + next(g for g in m.groups() if g is not None) + "}", s)


def normalize_answer(answer: str) -> str:
    """Normalise an answer string for comparison (presentation only, never the value).

    Writes Unicode and program-style mathematics as LaTeX (`mc²`, `½`, `√9`, `x**2`, `sin(pi/2)`); removes `$`/`\\(`, `\\left`/`\\right`, spacing
    commands, `\\text{}` wrappers, units after a number, thousands separators, `\\%`, degrees, dollar
    signs, markdown bold and trailing punctuation; maps `\\dfrac`/`\\tfrac` to
    `\\frac`. Units are compared before this, by `rewards.units` (`rewards.math_answer` strips a unit only when
    the gold has none or the same one).

    Args:
        answer: An extracted answer or a gold answer.

    Returns:
        The normalised string.

    >>> normalize_answer("\\\\$1,000.")
    '1000'
    >>> normalize_answer("**90^\\\\circ**")
    '90'
    """
    s = _plain_math_as_latex(_unicode_math_as_latex(answer.strip()))
    s = s.replace("**", "").replace("\\displaystyle", "")
    s = re.sub(r"^\$+|\$+$", "", s).strip()
    s = re.sub(r"^\\\(|\\\)$|^\\\[|\\\]$", "", s).strip()
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\\left\s*|\\right\s*|\\big\s*|\\Big\s*", "", s)
    s = s.replace("\\{", "\x00").replace("\\}", "\x01")  # keep set braces apart from groups
    s = re.sub(r",\\!\s*(?=\d{3})", ",", s)  # 1,\!000 (before spacing removal)
    s = _SPACING_RE.sub(" ", s)
    s = s.replace("{,}", ",")  # LaTeX thousands separators: 1{,}000 and 1,\!000
    for _ in range(3):  # nested \text{\textbf{..}}
        s = _TEXT_CMD_RE.sub(r"\1", s)
    s = re.sub(r"\^\s*\{?\\circ\}?|°|\\degree", "", s)
    s = _ORDINAL_RE.sub(" ", s)
    s = s.replace("\\%", "%").replace("\\$", "").replace("$", "")
    s = re.sub(r"%\s*$", "", s) if re.match(r"^-?[\d.,\s]+%\s*$", s) else s
    s = s.replace("\x00", "\\{").replace("\x01", "\\}")
    s = _repeating_decimal_as_fraction(s.strip())
    s = s.strip().rstrip(".;,").strip()  # not "!": 5! is a factorial
    m = _TRAILING_UNIT_RE.match(s) or _TRAILING_WORDS_RE.match(s)
    if m:
        s = m.group(1)
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "").replace(" ", "")
    s = re.sub(r"\s+", " ", s).strip()
    return s
