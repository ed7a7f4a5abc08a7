"""Final-answer extraction and string normalisation for math completions.

Pure string work (no sympy), so it is cheap and safe to run anywhere. Equivalence
lives in :mod:`rewards.math_answer`, which builds on what is here.

Extraction order, first hit wins (each is searched for its *last* occurrence, since a
model may restate or correct itself):

1. ``\\boxed{...}`` / ``\\fbox{...}`` (nested braces; also ``\\boxed 5``),
2. ``#### N`` (GSM8K),
3. "final answer is X", "the answer is X", "Answer: X", "A: X",
4. the final non-empty line (its last ``$...$`` span, else its last number).

The last number is extracted from any text (so that logs show what was read), but the grader
pays it only when the text reads as finished (:func:`reads_finished`): a response cut off
mid-reasoning ends on whatever number the cut fell after.
"""

from __future__ import annotations

import re

__all__ = ["extract_answer", "find_last_boxed", "normalize_answer", "completion_text", "reads_finished",
           "reasoning_left_open",
           "MAX_ANSWER_CHARS"]

# An extracted answer longer than this is not an answer a grader should try to parse:
# it is garbage or a runaway box, and parsing it can only cost time.
MAX_ANSWER_CHARS = 1000

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
_HASH_RE = re.compile(r"####\s*([^\n]+)")
_PHRASE_RE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*(.+)", re.IGNORECASE
)
_A_COLON_RE = re.compile(r"(?:^|\n)\s*A:\s*([^\n]+)")
# A number is never cut short ("1,000.99m²" is 1000.99, not 1,000); a letter may follow it only when it
# starts a short unit ("12m²", "5kg"), so that "2x" is no number.
_UNIT_AFTER_NUMBER = r"(?:mm|cm|km|m|kg|mg|g|ml|l|s|h|min|ft|lbs?|mi)(?![A-Za-z])"
_NUMBER_RE = re.compile(
    r"(?<![A-Za-z\d.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?"
    rf"(?![./]?\d)(?:(?={_UNIT_AFTER_NUMBER})|(?![A-Za-z]))"
)
# Chat-template tokens that models leak after their answer ("<|im_start|>user"), DeepSeek's full-width ones
# ("<｜end▁of▁sentence｜>") and the reasoning tags, whose content stays.
_CHAT_TOKEN_RE = re.compile(r"<\|[A-Za-z_]+\|>\w*|<｜[^｜<>]{1,40}｜>|</?think>")
# An equation whose right-hand side is missing ("5 * 6 =", "7 + 5 = }."): the answer was never written.
_UNFINISHED_EQUATION_RE = re.compile(r"=\s*[\s.,;:}{)$]*$")
_FINAL_RE = re.compile(r"final answer is", re.IGNORECASE)
# What may follow the last math span that is the answer: nothing, or "is the solution." / "is our answer."
_CLOSING_REMARK_RE = re.compile(
    r"[\s.]*(?:(?:is|are)\s+(?:the|our|my)?\s*(?:final\s+)?(?:answer|solution|result)s?[\s.!]*)?", re.IGNORECASE
)
_INLINE_MATH_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)


def completion_text(completion: object) -> str | None:
    """Return the text of a TRL completion: a string, or a chat message list.

    Args:
        completion: ``"text"`` or ``[{"role": "assistant", "content": "text"}, ...]``.

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


def _match_brace(text: str, open_pos: int) -> int | None:
    """Index of the ``}`` that closes the ``{`` at ``open_pos``, or None."""
    depth = 0
    i = open_pos
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":  # skip escaped characters such as \{ and \}
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """All non-empty boxes as ``(start, end, content)``, in order."""
    boxes = []
    for match in _BOX_RE.finditer(text):
        start = match.end()
        if start < len(text) and text[start] == "{":
            end = _match_brace(text, start)
            if end is None:
                continue  # unbalanced: a truncated completion
            content, end = text[start + 1 : end].strip(), end + 1
        else:  # \boxed 5
            m = re.match(r"([^\s$.,;]+)", text[start:])
            content, end = (m.group(1), start + m.end()) if m else ("", start)
        if content:  # empty boxes are echoes of a prompt's "\boxed{}" instruction
            boxes.append((match.start(), end, content))
    return boxes


# What may sit between boxes that together give one answer: "\boxed{1} and \boxed{2}".
# One word may precede the connector ("\boxed{1} papers and \boxed{2} bins"), and a \text may name the
# part ("\boxed{(3, 3)} \text{ for part (a) and } \boxed{(1, 1)}"); prose ("no no no", "thus but") may not.
_BOX_JOINER_RE = re.compile(
    r"^\s*(?:[A-Za-z]+\s+(?=and\b|or\b|,))?"
    r"(?:\s|,|;|\$|\\[()\[\]]|\\q?quad|\\text\{\s*(?:for\s+part\s*\(?[a-z0-9]\)?\s*)?(?:and|or)?\s*\}|\band\b|\bor\b"
    r"|[a-z]_?\{?\d?\}?\s*=)*$"
)


def find_last_boxed(text: str, join: bool = True) -> str | None:
    """Content of the last non-empty ``\\boxed{...}`` or ``\\fbox{...}`` in ``text``.

    Args:
        text: The text to search.
        join: Join the final run of boxes separated only by connectors ("and",
            commas, ``\\quad``) into one comma-separated answer, as models write
            several solutions as several boxes.
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


def _strip_phrase_tail(answer: str) -> str:
    """Cut what follows an answer on its line: a sentence end, a trailing remark."""
    answer = answer.strip()
    m = _INLINE_MATH_RE.search(answer)
    if m and m.start() < 3:  # "The answer is $\frac{1}{2}$." -> the math span
        return next(g for g in m.groups() if g is not None)
    answer = re.split(r"\.(?=\s|$)|\s+(?:because|since|so|which)\s", answer, maxsplit=1)[0].strip()
    if not _looks_like_bare_answer(answer):  # prose ("Jane started 3 hours ago"): its only number
        numbers = _NUMBER_RE.findall(answer)
        if len(numbers) == 1:
            return numbers[0]
    return answer


# A number in prose, with a decimal comma ("2,74 $") or a thousands separator; CJK text around it is prose too.
_PROSE_NUMBER_RE = re.compile(r"(?<![A-Za-z\d.,])-?\d+(?:[.,]\d+)*(?:/\d+)?(?![\d])")
# Words that are mathematics written without a backslash ("2 sin x"), not prose.
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "lim", "max", "min", "gcd", "lcm", "mod",
               "det", "sqrt", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "and", "or", "pi", "inf"}


def _prose_number(text: str) -> str | None:
    """The only number of a short text that is prose around it ("Soucis : 2,74 $ a..", "比例为13/28"), else None."""
    words = re.findall(r"[^\W\d_]{3,}", re.sub(r"\\[A-Za-z]+", " ", text))
    if not any(w.lower() not in _MATH_WORDS for w in words):
        return None
    numbers = _PROSE_NUMBER_RE.findall(text)
    return numbers[0] if len(numbers) == 1 else None


def _looks_like_bare_answer(text: str) -> bool:
    """A short text without prose: the whole text is the answer (e.g. ``(x-2)(x+2)``)."""
    return len(text) <= 120 and not re.search(r"[A-Za-z]{2,}\s+[A-Za-z]{2,}", re.sub(r"\\[A-Za-z]+", "", text))


# --- does the text read as finished? ---------------------------------------------------
#
# The last-number fallback reads any number; on a response cut off mid-reasoning (a token limit) that number is
# wherever the cut fell, and pays whenever it happens to be the gold. A careful grader takes a last number as the
# answer only from a response that reads as finished: its last line is a sentence that ends ("... is 9."), a bare
# answer ("n = 15", "**858**", "$$\tan A = 2$$") or a short statement of a value ("Le coût final est donc de
# 100 - 30 = 70"); never a line that stops mid-word, mid-expression or mid-list, nor a reasoning block left open.

# Tags that open and close a part of a response: one left open means the response stopped inside it.
_OPEN_CLOSE_TAGS = (("<think>", "</think>"), ("<|begin_of_thought|>", "<|end_of_thought|>"),
                    ("<|begin_of_solution|>", "<|end_of_solution|>"))
# A line that stops inside an expression: after an operator, a relation, an opening bracket, a comma or a colon.
_ENDS_MID_EXPRESSION_RE = re.compile(
    r"(?:[=+\-*/×÷^<>≤≥≈(\[{,:;]|\\(?:cdot|times|div|pm|mp|frac|sqrt|left|le|ge|leq|geq|approx|quad))\s*$"
)
_LIST_MARKER_RE = re.compile(r"(?:\d{1,2}|[a-z]|[ivx]{1,4})[.)]|\(\w\)|[-*•]")
# A sentence end (not "..." nor "?": an ellipsis trails off, a question asks), then closing marks.
_SENTENCE_END_RE = re.compile(r"(?<![.…])[.!。！।۔](?:[\s*_)\]}\"'”’»」』$]|\\[)\]])*$")
_ANSWER_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\\frac\{-?\d+\}\{\d+\}|-?\\frac\d\d"
_NUMBER_UNIT = r"(?:\s*(?:\\%|%|\\circ|°|[€$£¥])|\s*[^\W\d_]{1,12}[²³]?)?"
# A bare answer line: a number, or "name = number" where the name has a letter (so "210 - 166 = 44" is a step).
_BARE_ANSWER_LINE_RE = re.compile(rf"(?:(?=[^=]*[A-Za-z\\])[^=]{{1,40}}=\s*)?(?:{_ANSWER_NUMBER}){_NUMBER_UNIT}")
_ENDS_WITH_NUMBER_RE = re.compile(rf"(?:{_ANSWER_NUMBER}){_NUMBER_UNIT}[\s*_)\]}}$€%\\.!。]*$")
# Words that state a value or a conclusion; a last line without sentence end must have one to read as finished.
_CONCLUDING_RE = re.compile(
    r"\b(?:therefore|thus|hence|so|total|totals|final|finally|answer|result|conclusion|altogether|is|are|was|were"
    r"|equals?|it's|donc|ainsi|réponse|résultat|est|por lo tanto|entonces|respuesta|resultado|es|also|daher"
    r"|insgesamt|antwort|ergebnis|ist|итак|ответ|следовательно|равно)\b"
    r"|因此|所以|总共|一共|答案|结果|是|よって|したがって|答え|لذا|إذن|الجواب|هو|इसलिए|उत्तर|है",
    re.IGNORECASE,
)
_OPERATORS = ("+", "-", "*", "/", "×", "÷", "^", "\\cdot", "\\times")


def reasoning_left_open(text: str) -> bool:
    """True when a reasoning block was opened and never closed (``<think>`` without a later ``</think>``): the
    response stopped inside its reasoning, so nothing in it is a final answer unless it says so (a box, a phrase)."""
    return any(open_tag in text and close_tag not in text[text.rfind(open_tag):]
               for open_tag, close_tag in _OPEN_CLOSE_TAGS)


def reads_finished(text: str) -> bool:
    """True when a completion reads as finished, so that its last number may stand as its answer.

    Finished: no reasoning block left open (``<think>`` without ``</think>``), and the last non-empty line
    (chat tokens removed) does not stop inside an expression (an operator, ``=``, an opening bracket, an
    unclosed ``<<`` annotation, a comma or colon at its end, or a lone list marker such as ``1.``) and is one of

    - a sentence that ends (``.``, ``!``, ``。``; not ``...`` nor ``?``),
    - a bare answer: a number, or ``name = number`` (``n = 15``, ``**858**``, ``$$\\tan A = 2$$``),
    - a short statement of a value: it ends with a number that no operator precedes and has a word that states
      a value or a conclusion ("so", "therefore", "total", "is", "donc", "因此", ...).

    >>> reads_finished("So 3 + 4 = 7, then 7 *")
    False
    >>> reads_finished("So 3 + 4 = 7, and the total is 7.")
    True
    """
    if not isinstance(text, str) or reasoning_left_open(text):
        return False
    lines = [line.strip() for line in _CHAT_TOKEN_RE.sub(" ", text).splitlines() if line.strip()]
    if not lines:
        return False
    line = lines[-1]
    if line.count("<<") > line.count(">>") or sum(map(line.count, "([{")) > sum(map(line.count, ")]}")):
        return False  # an annotation or a bracket left open
    line = line[-300:]  # how a line ends is in its tail (and the patterns below stay linear on it)
    if line.count("**") % 2 == 0:
        line = re.sub(r"(?:\*\*\s*)+$", "", line).rstrip()
    core = re.sub(r"(?:\$|\\\)|\\\]|\s)+$", "", line)  # without closing math delimiters
    if _UNFINISHED_EQUATION_RE.search(line) or _ENDS_MID_EXPRESSION_RE.search(core) or _LIST_MARKER_RE.fullmatch(line):
        return False
    if _SENTENCE_END_RE.search(line):
        return True
    bare = re.sub(r"\*\*|\$+|\\[()\[\]]", "", line).strip().rstrip(".!").strip()
    if _BARE_ANSWER_LINE_RE.fullmatch(bare):
        return True
    if len(lines[-1]) > 200 or not _CONCLUDING_RE.search(line):
        return False
    number = _ENDS_WITH_NUMBER_RE.search(line)
    return bool(number and not line[: number.start()].rstrip().endswith(_OPERATORS))


def extract_answer(text: str) -> tuple[str | None, str]:
    """Extract the final answer of a completion.

    Args:
        text: The completion text.

    Returns:
        ``(answer, how)``: the raw answer string (None when nothing was found) and
        which rule found it (``boxed``, ``####``, ``phrase``, ``A:``, ``bare``,
        ``last_math``, ``last_number``, ``none``).

    >>> extract_answer("so \\\\boxed{\\\\frac{1}{2}}.")
    ('\\\\frac{1}{2}', 'boxed')
    >>> extract_answer("48/2 = 24\\n#### 24")
    ('24', '####')
    """
    raw, text = text, _CHAT_TOKEN_RE.sub(" ", text)
    boxes = _boxes(text)
    final_phrase = list(_FINAL_RE.finditer(text))
    if boxes and not (final_phrase and final_phrase[-1].start() > boxes[-1][1]):
        return find_last_boxed(text), "boxed"
    hashes = _HASH_RE.findall(text)
    if hashes:
        return hashes[-1].strip(), "####"
    phrases = _PHRASE_RE.findall(text)
    if phrases:
        answer = phrases[-1]
        for _ in range(3):  # "Final Answer: The final answer is $5$." nests phrases
            inner = _PHRASE_RE.findall(answer)
            if not inner:
                break
            answer = inner[-1]
        answer = _strip_phrase_tail(answer)
        if answer:
            return answer, "phrase"
    a_colon = _A_COLON_RE.findall(text)
    if a_colon:
        return a_colon[-1].strip(), "A:"
    # A bare answer is the whole text, or what follows the reasoning when the completion closed it.
    after_reasoning = raw.rpartition("</think>")[2]
    bare = _CHAT_TOKEN_RE.sub(" ", after_reasoning) if after_reasoning.strip() and "</think>" in raw else text
    stripped = re.sub(r"^\s*(?:answer|réponse|solution)\s*:?", "", bare.strip(), flags=re.I).strip()
    if (stripped and _looks_like_bare_answer(stripped) and not _UNFINISHED_EQUATION_RE.search(stripped)
            and not _ENDS_MID_EXPRESSION_RE.search(stripped)):
        return _prose_number(stripped) or stripped, "bare"
    # The last math span, when the text ends with it ("... is $\\frac{1}{2}$.").
    spans = list(_INLINE_MATH_RE.finditer(text[-300:]))
    if spans and _CLOSING_REMARK_RE.fullmatch(text[-300:][spans[-1].end() :]):
        span = next(g for g in spans[-1].groups() if g is not None).strip()
        if span:
            return span, "last_math"
    numbers = _NUMBER_RE.findall(text)
    if numbers:
        return numbers[-1], "last_number"
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


def normalize_answer(answer: str) -> str:
    """Normalise an answer string for comparison (presentation only, never the value).

    Removes ``$``/``\\(``, ``\\left``/``\\right``, spacing commands, ``\\text{}``
    wrappers, units after a number, thousands separators, ``\\%``, degrees, dollar
    signs, markdown bold and trailing punctuation; maps ``\\dfrac``/``\\tfrac`` to
    ``\\frac``.

    >>> normalize_answer("\\\\$1,000.")
    '1000'
    >>> normalize_answer("**90^\\\\circ**")
    '90'
    """
    s = answer.strip()
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
    s = s.strip().rstrip(".;,").strip()  # not "!": 5! is a factorial
    m = _TRAILING_UNIT_RE.match(s) or _TRAILING_WORDS_RE.match(s)
    if m:
        s = m.group(1)
    if _THOUSANDS_RE.match(s):
        s = s.replace(",", "").replace(" ", "")
    s = re.sub(r"\s+", " ", s).strip()
    return s
