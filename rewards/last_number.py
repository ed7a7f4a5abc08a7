"""The last-number fallback: when may the last number of a response stand as its answer?

A response without a box, a `####` or an answer phrase is graded on its last number. That number is an answer
only when the response reads as finished (`reads_finished`: not cut off mid-expression, no reasoning block left
open) and the number is *stated* as a value (`last_number_refusal`): not a list marker or a section heading
("**5. Determining ...**"), not a step label, not the bound of an inequality ("-9 > 0"), not part of an expression
("2 \\sqrt 2", "10^{-3}"), not the right-hand side of an equation never solved ("3x + 5 = 20"), not in a question or
an echoed copy of the problem, and in a sentence that states something ("is", "=", "so", "total", ...).

Pure string work (no sympy), shared by `rewards.extract` and `rewards.math_answer`.
"""

from __future__ import annotations

import re

__all__ = ["reads_finished", "reasoning_left_open", "last_number", "last_number_refusal"]

# Chat-template tokens that models leak after their answer ("<|im_start|>user"), DeepSeek's full-width ones
# ("<｜end▁of▁sentence｜>") and the reasoning tags, whose content stays.
CHAT_TOKEN_RE = re.compile(r"<\|[A-Za-z_]+\|>\w*|<｜[^｜<>]{1,40}｜>|</?think>")
# A number is never cut short ("1,000.99m²" is 1000.99, not 1,000); a letter may follow it only when it
# starts a short unit ("12m²", "5kg"), so that "2x" is no number.
_UNIT_AFTER_NUMBER = r"(?:mm|cm|km|m|kg|mg|g|ml|l|s|h|min|ft|lbs?|mi)(?![A-Za-z])"
NUMBER_RE = re.compile(
    r"(?<![A-Za-z\d.])-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?"
    rf"(?![./]?\d)(?:(?={_UNIT_AFTER_NUMBER})|(?![A-Za-z]))"
)
# What the fallback reads as one number: scientific notation whole ("3 \times 10^{-3}" is not -3), e-notation,
# a \frac of integers ("\frac{1}{2}" is not 2), else a plain number.
_LAST_NUMBER_RE = re.compile(
    r"(?<![A-Za-z\d.])-?\d+(?:\.\d+)?\s*(?:\\times|\\cdot|×|·|\*|x)\s*10\s*\^\s*"
    r"(?:\{\s*[-−]?\d+\s*\}|\(\s*[-−]?\d+\s*\)|[-−]?\d+)"
    r"|(?<![A-Za-z\d.])-?\d+(?:\.\d+)?[eE][-+]?\d+(?![\w.])"
    r"|-?\\[dt]?frac\s*\{\s*-?\d+\s*\}\s*\{\s*\d+\s*\}"
    rf"|{NUMBER_RE.pattern}"
)
# An equation whose right-hand side is missing ("5 * 6 =", "7 + 5 = }."): the answer was never written.
UNFINISHED_EQUATION_RE = re.compile(r"=\s*[\s.,;:}{)$]*$")
# A line that stops inside an expression: after an operator, a relation, an opening bracket, a comma or a colon.
ENDS_MID_EXPRESSION_RE = re.compile(
    r"(?:[=+\-*/×÷^<>≤≥≈(\[{,:;]|\\(?:cdot|times|div|pm|mp|frac|sqrt|left|le|ge|leq|geq|approx|quad))\s*$"
)

# --- does the text read as finished? ---------------------------------------------------
#
# On a response cut off mid-reasoning (a token limit) the last number is wherever the cut fell, and would pay whenever
# it happens to be the gold. A finished response's last line is a sentence that ends ("... is 9."), a bare answer
# ("n = 15", "**858**", "- 675", "$$\tan A = 2$$", "C = \$675 \]") or a short statement of a value ("Le coût final
# est donc de 100 - 30 = 70"); never a line that stops mid-word, mid-expression or mid-list, nor a reasoning block
# left open.

# Tags that open and close a part of a response: one left open means the response stopped inside it.
_OPEN_CLOSE_TAGS = (("<think>", "</think>"), ("<|begin_of_thought|>", "<|end_of_thought|>"),
                    ("<|begin_of_solution|>", "<|end_of_solution|>"))
_LIST_MARKER_RE = re.compile(r"(?:\d{1,2}|[a-z]|[ivx]{1,4})[.)]|\(\w\)|[-*•]")
_BULLET_RE = re.compile(r"^(?:[-*•–]|\d{1,2}[.)])\s+")
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
    """Whether a reasoning block was opened and never closed (`<think>` without a later `</think>`).

    The response stopped inside its reasoning, so nothing in it is a final answer unless it says so (a box, a
    phrase).

    Args:
        text: The completion text.

    Returns:
        True when a block is left open.
    """
    return any(open_tag in text and close_tag not in text[text.rfind(open_tag):]
               for open_tag, close_tag in _OPEN_CLOSE_TAGS)


def _bare_line(line: str) -> str:
    """A line without bullets, bold, math delimiters and escaped dollar signs ("- **\\$675** \\]" -> "675")."""
    line = re.sub(r"\*\*|\\\$|\$+|\\[()\[\]]", "", line).strip()
    return _BULLET_RE.sub("", line).strip().rstrip(".!").strip()


def reads_finished(text: str) -> bool:
    """True when a completion reads as finished, so that its last number may stand as its answer.

    Finished: no reasoning block left open (`<think>` without `</think>`), and the last non-empty line
    (chat tokens removed) does not stop inside an expression (an operator, `=`, an opening bracket, an
    unclosed `<<` annotation, a comma or colon at its end, or a lone list marker such as `1.`) and is one of

    - a sentence that ends (`.`, `!`, `。`; not `...` nor `?`),
    - a bare answer, bullets and math delimiters aside: a number, or `name = number` (`n = 15`, `**858**`,
      `- 675`, `C = \\$675 \\]`),
    - a short statement of a value: it ends with a number that no operator precedes and has a word that states
      a value or a conclusion ("so", "therefore", "total", "is", "donc", "因此", ...).

    Args:
        text: The completion text.

    Returns:
        Whether the text reads as finished (False for anything that is not a string).

    >>> reads_finished("So 3 + 4 = 7, then 7 *")
    False
    >>> reads_finished("So 3 + 4 = 7, and the total is 7.")
    True
    """
    if not isinstance(text, str) or reasoning_left_open(text):
        return False
    lines = [line.strip() for line in CHAT_TOKEN_RE.sub(" ", text).splitlines() if line.strip()]
    if not lines:
        return False
    line = lines[-1]
    if line.count("<<") > line.count(">>") or sum(map(line.count, "([{")) > sum(map(line.count, ")]}")):
        return False  # an annotation or a bracket left open
    line = line[-300:]  # how a line ends is in its tail (and the patterns below stay linear on it)
    if line.count("**") % 2 == 0:
        line = re.sub(r"(?:\*\*\s*)+$", "", line).rstrip()
    core = re.sub(r"(?:\$|\\\)|\\\]|\s)+$", "", line)  # without closing math delimiters
    if UNFINISHED_EQUATION_RE.search(line) or ENDS_MID_EXPRESSION_RE.search(core) or _LIST_MARKER_RE.fullmatch(line):
        return False
    if _SENTENCE_END_RE.search(line):
        return True
    if _BARE_ANSWER_LINE_RE.fullmatch(_bare_line(line)):
        return True
    if len(lines[-1]) > 200 or not _CONCLUDING_RE.search(line):
        return False
    number = _ENDS_WITH_NUMBER_RE.search(line)
    return bool(number and not line[: number.start()].rstrip().endswith(_OPERATORS))


# --- is the last number stated as an answer? ----------------------------------------------------

# The window read: the last number must lie in the response's tail (an answer is stated at the end).
_TAIL_CHARS = 4000
# Sentence boundaries: a line break, a sentence end followed by a space (not the point of "1.5"), a CJK full stop.
_BOUNDARY_RE = re.compile(r"\n|[.!?](?=\s|$)|[。！？।۔]")
_MARKER_BEFORE_RE = re.compile(r"[\s*_>#•–-]*\(?")
_MARKER_AFTER_RE = re.compile(r"\)|\.(?=\s+\S)")
_LABEL_BEFORE_RE = re.compile(
    r"\b(?:step|part|case|problem|question|example|exercise|section|method|approach|option|stage|phase|chapter"
    r"|figure|table|equation|eq|lemma|theorem|claim|round|no)\s*[.#]?\s*$", re.IGNORECASE)
_RELATION = r"(?:[<>≤≥≠≮≯]|\\(?:leq?|geq?|lt|gt|neq?|leqslant|geqslant)(?![A-Za-z]))"
_RELATION_BEFORE_RE = re.compile(rf"{_RELATION}\s*=?\s*$")
_RELATION_AFTER_RE = re.compile(rf"^[\s$}})]*{_RELATION}")
_EXPR_BEFORE_RE = re.compile(
    r"(?:[+\-*/×÷^·_√]|\\(?:cdot|times|div|sqrt|pm|mp)(?![A-Za-z])|(?:\\[A-Za-z]+|[\^_])\s*\{)\s*$")
_EXPR_AFTER_RE = re.compile(r"^\s*(?:[+*/×÷^·]\s*[\w\\(]|\\(?:cdot|times|div|sqrt|pi)(?![A-Za-z])|π|√|_)")
# What may sit between the equals sign and the number: math delimiters, a dollar sign, an opening brace.
_OPENERS_RE = re.compile(r"(?:\s|\$|\\\$|\\\(|\\\[|\{)*$")
_PROSE_WORD_RE = re.compile(r"[A-Za-z]{2,}[.,;:]?")
_MATH_NAMES = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "frac", "cdot", "times", "pi",
               "left", "right", "dfrac", "tfrac"}
_VARIABLE_RE = re.compile(r"(?<![A-Za-z\\])[A-Za-z](?![A-Za-z])")
_FUNCTION_VALUE_RE = re.compile(r"[A-Za-z](?:_\{?\w+\}?)?'*\([^()]*\)")  # f(2), P(A), g'(x): a name, not an equation
_IMPERATIVE = r"find|compute|calculate|determine|evaluate|solve|simplify|express|write|show|prove|convert|round"
_ECHO_START_RE = re.compile(
    rf"^[\W_]*(?:(?:problem|question|exercise|task|q)\s*\d*\s*[:.)]|(?:{_IMPERATIVE}|given|suppose|assume"
    r"|let(?!\s*(?:me|us)\b|['’]s)|what|how|which)\b)", re.IGNORECASE)
# A paragraph that starts as a copy of the problem does ("Problem: Janet has 3 apples ...").
_ECHO_PARAGRAPH_RE = re.compile(r"(?:^|\n)[\W_]*(?:problem|question|exercise|task|q)\s*\d*\s*[:.)][^\n]*$", re.I)
_ECHO_ANYWHERE_RE = re.compile(
    rf"\b(?:please|(?:put|enter|express|give) your (?:final )?answer)\b|,\s*(?:then\s+)?(?:{_IMPERATIVE}|what|how)\b",
    re.IGNORECASE)
# A later sentence that asks what the problem asks ("What is the sum ...?").
_ECHO_QUESTION_RE = re.compile(r"\W*(?:what|how|which|find)\b.*\?\s*$", re.IGNORECASE | re.DOTALL)
_VALUE_CUE_RE = re.compile(
    r"=|:|≈|≡|\\approx|\\equiv|\b(?:gets?|got|getting|obtain(?:s|ed)?|gives?|gave|giving|yields?|makes?|made"
    r"|arrived? at|arrives at|comes? to|came to|becomes?|became|left|remain(?:s|ed|ing)?|be|been"
    r"|(?:increas|decreas|ris|fall|dropp|grow|chang|shrink)(?:e|es|ed|s|ing)? by"
    # verbs that state a quantity ("It takes 12 minutes.", "She will need 12 more.", "He paid $12.")
    r"|costs?|takes?|took|needs?|needed|pays?|paid|spends?|spent|earns?|earned|saves?|saved|weighs?|weighed"
    r"|measures?|measured|contains?|contained|holds?|held|has|have|had|sells?|sold|buys?|bought|travel(?:s|l?ed)?"
    r"|scores?|scored|won|lost)\b", re.IGNORECASE)


def last_number(text: str) -> str | None:
    """The last number of a text as the fallback reads it.

    Args:
        text: The completion text.

    Returns:
        The number as written (`3 \\times 10^{-3}` and `\\frac{1}{2}` whole, not their last digits), or None.
    """
    numbers = _LAST_NUMBER_RE.findall(text)
    return numbers[-1] if numbers else None


def _unsolved_equation(before: str) -> bool:
    """True when `before` ends with `<expression with an unknown> =` (`3x + 5 =`, `a + b =`, `2x =`)."""
    head = _OPENERS_RE.sub("", before)
    if not head.endswith("=") or head.endswith(("==", "<=", ">=", "!=")):
        return False
    lhs = re.split(r"[=,;:<>≤≥]", head[:-1])[-1]
    kept = []  # the mathematical tail of the left-hand side, back to the first word of prose
    for token in reversed(lhs.split()):
        if _PROSE_WORD_RE.fullmatch(token) and token.rstrip(".,;:").lower() not in _MATH_NAMES:
            break
        kept.insert(0, token)
    expr = " ".join(kept).replace("$", "").replace("\\(", "").strip()
    if not expr or _FUNCTION_VALUE_RE.fullmatch(expr):
        return False
    has_unknown = _VARIABLE_RE.search(re.sub(r"\\[A-Za-z]+", " ", expr))
    return bool(has_unknown and re.search(r"[+\-*/^·×]|\d\s*[A-Za-z(\\]|\\(?:frac|sqrt|cdot|times)", expr))


def _echoes_problem(statement: str) -> bool:
    return bool(_ECHO_START_RE.search(statement) or _ECHO_ANYWHERE_RE.search(statement))


def last_number_refusal(text: str) -> str | None:
    """Why the last number of a text may not stand as its answer, or None when it is stated as one.

    The text is assumed to read as finished (`reads_finished`); this judges the statement that holds the last
    number (see the module docstring).

    Args:
        text: The completion text.

    Returns:
        None when the number is stated as an answer; else what it is, to follow "last number 'N' is ...":
        `"in a heading"`, `"a list marker"`, `"a step or section number"`, `"a bound of an inequality"`,
        `"part of an expression"`, `"the right-hand side of an equation never solved"`, `"in a question"`,
        `"in an echo of the problem"`, `"not stated as an answer"`.

    >>> last_number_refusal("We need to solve the equation 3x + 5 = 20.")
    'the right-hand side of an equation never solved'
    >>> last_number_refusal("Therefore, the total is 20.") is None
    True
    """
    tail = CHAT_TOKEN_RE.sub(" ", text)[-_TAIL_CHARS:]
    matches = list(_LAST_NUMBER_RE.finditer(tail))
    if not matches:
        return "not stated as an answer"
    start, end = matches[-1].span()
    line_start = tail.rfind("\n", 0, start) + 1
    line_end = tail.find("\n", end)
    line_end = len(tail) if line_end < 0 else line_end
    # the text on either side in its line, bold markers dropped ("**858**" is no multiplication)
    # (at most 300 characters each: what decides is next to the number, and the patterns stay linear)
    before = tail[max(line_start, start - 300):start].replace("**", "")
    after = tail[end:min(line_end, end + 300)].replace("**", "")
    if tail[line_start:].lstrip().startswith("#"):
        return "in a heading"
    if _MARKER_BEFORE_RE.fullmatch(before) and _MARKER_AFTER_RE.match(after):  # "3. Compute ...", "(4) Add ..."
        return "a list marker"
    if _LABEL_BEFORE_RE.search(before):
        return "a step or section number"
    if _RELATION_BEFORE_RE.search(_OPENERS_RE.sub("", before)) or _RELATION_AFTER_RE.match(after):
        return "a bound of an inequality"
    at_line_start = _MARKER_BEFORE_RE.fullmatch(before)  # only bullets or markdown before it ("- 675")
    if (not at_line_start and _EXPR_BEFORE_RE.search(_OPENERS_RE.sub("", before))) or _EXPR_AFTER_RE.match(after):
        return "part of an expression"
    if _unsolved_equation(before):
        return "the right-hand side of an equation never solved"
    left = max((b.end() for b in _BOUNDARY_RE.finditer(tail, 0, start)), default=0)
    right_match = _BOUNDARY_RE.search(tail, end)
    right = right_match.end() if right_match else len(tail)
    statement, rest = tail[left:right], tail[right:]
    if "?" in statement[end - left:]:
        return "in a question"
    later = [s for s in re.split(r"\n|(?<=[.!?。！？])\s+", rest) if s.strip()]
    if (_ECHO_PARAGRAPH_RE.search(tail[:right]) or _echoes_problem(statement)
            or any(_echoes_problem(s) or _ECHO_QUESTION_RE.match(s) for s in later)):
        return "in an echo of the problem"
    if not (_CONCLUDING_RE.search(statement) or _VALUE_CUE_RE.search(statement)
            or _BARE_ANSWER_LINE_RE.fullmatch(_bare_line(statement))):
        return "not stated as an answer"
    return None
