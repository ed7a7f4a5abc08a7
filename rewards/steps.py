"""Step checking: find the arithmetic and algebraic claims of a chain of thought and
check each with sympy (a process reward without a learned model).

A *claim* is an equation a step states: `a op b = c`, a chain `a = b = c` (each
adjacent pair is one claim), `so x = 5`, LaTeX (`\\frac{1}{2} \\cdot 4 = 2`) or
plain text, and GSM8K calculator annotations `<<48/2=24>>`. Each claim is:

- `valid`: both sides agree, exactly (rational arithmetic) or as a symbolic identity;
  a right-hand decimal is allowed the rounding it was written with (`22/7 = 3.14`);
- `invalid`: both sides are numbers (after substituting variables found earlier, such
  as `x = 5`) and they differ;
- `unverifiable`: it could not be parsed, or it is an equation in unknowns rather than
  an identity (it is then remembered: a later `x = 5` is checked against it).

`check_steps` is pure and may be slow on hostile text; `MathSteps` runs it
in the worker pool.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from rewards.calls import check_call
from rewards.extract import completion_text
from rewards.pool import get_default_pool

__all__ = ["Claim", "check_steps", "MathSteps", "math_steps"]


@dataclass
class Claim:
    """One equation stated in a step, and its verdict.

    Attributes:
        step: Index of the step (0-based) that states it.
        span: `(start, end)` character offsets of the claim in the text.
        lhs: The left side as written.
        rhs: The right side as written.
        status: `"valid"`, `"invalid"` or `"unverifiable"`.
        reason: Why (e.g. `"exact"`, `"identity"`, `"differs by 2"`).
    """

    step: int
    span: tuple[int, int]
    lhs: str
    rhs: str
    status: str
    reason: str = ""

    def to_dict(self) -> dict:
        """The claim as a plain dict."""
        return asdict(self)


_STEP_RE = re.compile(r"[^\n]+")
_ANNOTATION_RE = re.compile(r"<<([^<>=]+)=([^<>=]+)>>")
_MATH_SPAN_RE = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.S)
# Plain-text equation chains: numbers, one-letter variables, operators, parentheses. Each digit run is taken whole
# ((?!\d) after \d+): otherwise the repeated group could split a run of n digits in 2^(n-1) ways, and a long digit
# run without an "=" (a degenerate policy's output) backtracked for minutes.
_TERM = r"(?:\d+(?!\d)(?:[.,]\d+(?!\d))*%?|(?<![A-Za-z])[a-zA-Z](?![A-Za-z])|[-+*/×÷·^()\s])+"
_PLAIN_EQ_RE = re.compile(rf"{_TERM}(?:={_TERM})+")
_MAX_SIDE_CHARS = 200


def _latex_to_plain(s: str) -> str:
    """Enough LaTeX for arithmetic claims: fractions, products, powers, roots."""
    s = re.sub(r"\\(?:left|right|displaystyle|,|;|!|quad)", " ", s)
    s = re.sub(r"\\text\{[^{}]*\}|\\mathrm\{[^{}]*\}", " ", s)
    for _ in range(5):
        s = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        s = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", s)
    s = s.replace("\\times", "*").replace("\\cdot", "*").replace("\\div", "/")
    s = s.replace("×", "*").replace("·", "*").replace("÷", "/").replace("^", "**")
    s = s.replace("{", "(").replace("}", ")").replace("\\$", "").replace("$", "")
    return s


def _parse_side(text: str):
    """A sympy expression for one side of a claim, or None when it is not arithmetic."""
    # lazy: sympy's parser takes 0.9 s to import, and `import rewards` takes 0.06 s without it
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        standard_transformations,
    )

    s = _latex_to_plain(text).strip().rstrip(".,;:")
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # 1,000
    s = re.sub(r"(\d+(?:\.\d+)?)%", r"(\1/100)", s)
    if not s or len(s) > _MAX_SIDE_CHARS or "\\" in s or re.search(r"[A-Za-z]{4,}", s.replace("sqrt", "")):
        return None
    if re.search(r"\*\*\s*\(*\s*[\w.]+\s*\)*\s*\*\*|\*\*\s*\(?\s*\d{4,}|\d{4,}\s*!|\)\s*!", s):  # towers, huge powers
        return None
    transformations = standard_transformations + (implicit_multiplication_application, convert_xor)
    try:
        return parse_expr(s, transformations=transformations, evaluate=True)
    except Exception:  # noqa: BLE001 - sympy raises many types on junk; unparseable is a verdict
        return None


def _decimal_places(text: str) -> int | None:
    m = re.fullmatch(r"\s*\$?-?\d[\d,]*\.(\d+)\s*\$?\s*[.,;]?\s*", text)
    return len(m.group(1)) if m else None


def _check(lhs_text: str, rhs_text: str, known: dict, constraints: list) -> tuple[str, str]:
    import sympy  # lazy: 0.4 s to import, and `import rewards` takes 0.06 s without it

    lhs, rhs = _parse_side(lhs_text), _parse_side(rhs_text)
    if lhs is None or rhs is None:
        return "unverifiable", "not arithmetic"
    lhs_k, rhs_k = lhs.subs(known), rhs.subs(known)
    free = lhs_k.free_symbols | rhs_k.free_symbols
    if not free:
        diff = sympy.nsimplify(lhs_k - rhs_k) if (lhs_k.has(sympy.Float) or rhs_k.has(sympy.Float)) else sympy.simplify(lhs_k - rhs_k)
        if diff == 0:
            return "valid", "exact"
        places = _decimal_places(rhs_text)
        if places is not None and abs(float(lhs_k - rhs_k)) <= 0.5 * 10.0 ** (-places) + 1e-12:
            return "valid", f"rounded to {places} places"
        return "invalid", f"{sympy.sstr(lhs_k)} != {sympy.sstr(rhs_k)}"
    if sympy.simplify(lhs_k - rhs_k) == 0:
        return "valid", "identity"
    if isinstance(lhs, sympy.Symbol) and not rhs_k.free_symbols:  # "so x = 5"
        value = rhs_k
        checked = [c for c in constraints if c.free_symbols == {lhs}]
        known[lhs] = value
        if checked:
            if all(sympy.simplify(c.subs(lhs, value)) == 0 for c in checked):
                return "valid", f"satisfies {len(checked)} earlier equation(s)"
            return "invalid", "contradicts an earlier equation"
        return "unverifiable", "definition"
    constraints.append(lhs_k - rhs_k)
    return "unverifiable", "equation in unknowns"


def _claims_in(step: str) -> list[tuple[int, int, list[str]]]:
    """`(start, end, sides)` for each equation chain in one step."""
    found: list[tuple[int, int, list[str]]] = []
    taken: list[tuple[int, int]] = []
    for m in _ANNOTATION_RE.finditer(step):
        found.append((m.start(), m.end(), [m.group(1), m.group(2)]))
        taken.append((m.start(), m.end()))
    for m in _MATH_SPAN_RE.finditer(step):
        body = next(g for g in m.groups() if g is not None)
        if "=" in body and not any(a <= m.start() < b for a, b in taken):
            sides = re.split(r"(?<![<>!])=(?!=)", body.replace("&", ""))
            found.append((m.start(), m.end(), sides))
            taken.append((m.start(), m.end()))
    masked = "".join(" " if any(a <= i < b for a, b in taken) else c for i, c in enumerate(step))
    for m in _PLAIN_EQ_RE.finditer(masked):
        sides = m.group(0).split("=")
        if all(s.strip() for s in sides) and any(re.search(r"\d", s) for s in sides):
            found.append((m.start(), m.end(), sides))
    return sorted(found)


def check_steps(text: str, max_claims: int = 200) -> list[Claim]:
    """Split `text` into steps (lines) and check every equation each step states.

    Args:
        text: A chain of thought.
        max_claims: Stop after this many claims (bounds the work on long texts).

    Returns:
        The claims in order of appearance.

    >>> [c.status for c in check_steps("48/2 = 24, so 24 + 1 = 26")]
    ['valid', 'invalid']
    """
    if not isinstance(text, str):
        return []
    claims: list[Claim] = []
    known: dict = {}
    constraints: list = []
    for index, m in enumerate(_STEP_RE.finditer(text)):
        seen: set[tuple[str, str]] = set()  # "16 - 3 = <<16-3=13>>13" states one claim, not two
        for start, end, sides in _claims_in(m.group(0)):
            for lhs, rhs in zip(sides, sides[1:]):
                key = (re.sub(r"\s", "", lhs), re.sub(r"\s|^\$", "", rhs))
                if key in seen:
                    continue
                seen.add(key)
                status, reason = _check(lhs, rhs, known, constraints)
                claims.append(Claim(index, (m.start() + start, m.start() + end), lhs.strip(), rhs.strip(), status, reason))
                if len(claims) >= max_claims:
                    return claims
    return claims


def step_summary(claims: Sequence[Claim]) -> dict:
    """`{"valid", "invalid", "unverifiable", "score", "first_error"}` for a claim list.

    `score` is the fraction of verifiable claims that hold (None if none is
    verifiable); `first_error` is the step index of the first invalid claim (or None).
    """
    valid = sum(c.status == "valid" for c in claims)
    invalid = sum(c.status == "invalid" for c in claims)
    first = next((c.step for c in claims if c.status == "invalid"), None)
    score = valid / (valid + invalid) if valid + invalid else None
    return {"valid": valid, "invalid": invalid, "unverifiable": len(claims) - valid - invalid,
            "score": score, "first_error": first}


def _summarise(text: str) -> dict:
    """Pool task: check a text and summarise (small to send back)."""
    return step_summary(check_steps(text))


class MathSteps:
    """Process reward: the fraction of a completion's verifiable claims that hold.

    Args:
        timeout: Wall-time limit per completion, seconds.
        memory_mb: Address-space budget per completion, MiB.
        no_claims_score: The score when nothing is verifiable (None: "not applicable",
            which TRL turns into NaN and ignores).

    The index of the first erroneous step is logged (`steps_first_error`) and
    returned by `details`, for trainers that credit steps before it.
    """

    __name__ = "math_steps"

    def __init__(self, timeout: float = 5.0, memory_mb: float | None = 1024, no_claims_score: float | None = None):
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.no_claims_score = no_claims_score

    def details(self, completions: Sequence[Any], **kwargs: Any) -> list[dict]:
        """Check the steps of completions, keeping each summary.

        Args:
            completions: Strings or chat message lists.
            **kwargs: Dataset columns (unused; checked for length).

        Returns:
            One summary per completion (`valid`, `invalid`, `unverifiable`, `score`, `first_error`; `reason` set
            when the check failed).

        Raises:
            RewardCallError: for a malformed call (see `rewards.calls.check_call`).
        """
        completions = check_call(self.__name__, completions, kwargs)
        texts = [completion_text(c) for c in completions]
        todo = [i for i, text in enumerate(texts) if text is not None]
        results = get_default_pool().map(_summarise, [(texts[i],) for i in todo], timeout=self.timeout,
                                         memory_mb=self.memory_mb)
        failed = {"valid": 0, "invalid": 0, "unverifiable": 0, "score": 0.0, "first_error": None}
        # a completion with no text scores 0.0 (not "nothing to check"): the reason names what came instead
        out = [{**failed, "reason": f"bad-input: {type(c).__name__}"} for c in completions]
        for i, result in zip(todo, results):
            out[i] = {**result.value, "reason": ""} if result.ok else {**failed, "reason": result.reason}
        return out

    def __call__(self, completions: Sequence[Any], log_extra: Callable[[str, list], None] | None = None,
                 **kwargs: Any) -> list[float | None]:
        """Score completions (TRL signature); failures score 0.0 with a reason."""
        summaries = self.details(completions, **kwargs)
        if log_extra is not None:
            log_extra("steps_valid", [s["valid"] for s in summaries])
            log_extra("steps_invalid", [s["invalid"] for s in summaries])
            log_extra("steps_first_error", [s["first_error"] for s in summaries])
            log_extra("steps_reason", [s["reason"] for s in summaries])
        return [self.no_claims_score if s["score"] is None else float(s["score"]) for s in summaries]


math_steps = MathSteps()
