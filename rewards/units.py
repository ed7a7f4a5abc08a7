"""Units after a number: split them off, and say whether two answers name the same one.

A grader that strips units from both sides pays `5pm` for `5am` and `3 m` for `3 s`. Here a unit is
split off and canonicalised (`\\text{ m/s}^2`, `m s^{-2}` and `m·s⁻²` are all `m s^-2`; `hours` is
`h`; `p.m.` is `pm`) so that `rewards.math_answer` strips it only when the gold has none or the same.
Pure string work, like `rewards.extract`.
"""

from __future__ import annotations

import re

__all__ = ["split_unit", "units_agree"]

_PREFIXES = ("Y", "Z", "E", "P", "T", "G", "M", "k", "h", "c", "m", "μ", "u", "n", "p", "f", "a", "d")
# SI units and the others science answers use, by symbol (case matters: mA is not MA). Prefixed forms of the
# first group (km, μs, kPa, MeV, mL, ...) are symbols too.
_PREFIXABLE = ("m", "s", "g", "Hz", "N", "Pa", "J", "W", "C", "V", "F", "Ω", "T", "H", "L", "eV", "mol", "A", "K",
               "bar", "cal", "Wb", "S", "Bq", "Gy", "Sv", "M")
_OTHER_SYMBOLS = ("min", "h", "rad", "sr", "Å", "atm", "Torr", "torr", "mmHg", "psi", "mph", "ft", "in", "mi", "yd",
                  "lb", "oz", "gal", "°", "°C", "°F", "ppm", "dB", "Da", "amu", "lm", "lx", "cd", "am", "pm")
_SYMBOLS = {p + u for u in _PREFIXABLE for p in _PREFIXES} | set(_PREFIXABLE) | set(_OTHER_SYMBOLS)
# Single letters that are units only (a lone x, n or i is a variable). m, g, s and l may be written straight after the
# number ("12m²"); the others need a space or \text ("300 K", not "300K" read as 300 times K).
_ONE_LETTER_UNITS = {"m", "s", "g", "l", "L", "h", "K", "A", "N", "J", "W", "C", "V", "F", "T", "H", "M", "Å", "Ω", "°"}
_ONE_LETTER_ATTACHED = {"m", "s", "g", "l"}
# Words (lower case, singular) for units: their symbol, or themselves for counted things and currencies.
_WORDS = {
    "meter": "m", "metre": "m", "centimeter": "cm", "centimetre": "cm", "millimeter": "mm", "millimetre": "mm",
    "kilometer": "km", "kilometre": "km", "micrometer": "μm", "micron": "μm", "nanometer": "nm", "picometer": "pm",
    "second": "s", "sec": "s", "millisecond": "ms", "microsecond": "μs", "nanosecond": "ns", "minute": "min",
    "min": "min", "hour": "h", "hr": "h", "day": "day", "week": "week", "month": "month", "year": "year", "yr": "year",
    "gram": "g", "gramme": "g", "kilogram": "kg", "kilo": "kg", "milligram": "mg", "liter": "L", "litre": "L",
    "l": "L", "milliliter": "mL", "millilitre": "mL", "ml": "mL", "inch": "in", "foot": "ft", "feet": "ft",
    "yard": "yd", "mile": "mi", "pound": "lb", "lbs": "lb", "ounce": "oz", "gallon": "gal", "degree": "°",
    "deg": "°", "radian": "rad", "kelvin": "K", "joule": "J", "kilojoule": "kJ", "newton": "N", "watt": "W",
    "kilowatt": "kW", "volt": "V", "ampere": "A", "amp": "A", "ohm": "Ω", "pascal": "Pa", "hertz": "Hz",
    "mole": "mol", "electronvolt": "eV", "calorie": "cal", "kilocalorie": "kcal", "angstrom": "Å", "ångström": "Å",
    "atmosphere": "atm", "coulomb": "C", "farad": "F", "tesla": "T", "henry": "H", "molar": "M",
}
# SI prefixes spelled out ("kilopascals", "microfarads", "gigahertz"): the prefix's symbol before the unit's.
_PREFIX_WORDS = {"yotta": "Y", "zetta": "Z", "exa": "E", "peta": "P", "tera": "T", "giga": "G", "mega": "M",
                 "kilo": "k", "hecto": "h", "deci": "d", "centi": "c", "milli": "m", "micro": "μ", "nano": "n", "pico": "p",
                 "femto": "f", "atto": "a"}
# Words after a number that are mathematics, not a unit or a counted thing.
_MATH_WORDS = {"pi", "sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "mod"}
_TEMPERATURE = {"c": "°C", "celsius": "°C", "f": "°F", "fahrenheit": "°F"}
_POWER_WORDS = {"square": 2, "sq": 2, "cubic": 3, "cu": 3}
_FILLER_WORDS = {"each", "only", "total", "altogether", "exactly", "in", "of", "the", "a", "an", "approximately",
                 "about"}

_TEXT_RE = re.compile(r"\\(?:text|textrm|mathrm|mbox|operatorname|mathit|textit)\s*\{([^{}]*)\}")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
_SUPERSCRIPT_RE = re.compile(r"[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
_VALUE_RE = re.compile(
    r"\s*(?P<value>[-+]?\s*(?:\\\$|\$)?\s*(?:"
    rf"{_NUMBER}\s*(?:\\times|\\cdot|×|·|\*|x)\s*10\s*\^\s*(?:\{{\s*[-+]?\d+\s*\}}|[-+]?\d+)"  # 3 \times 10^{-3}
    rf"|{_NUMBER}[eE][-+]?\d+"  # 3e-3
    r"|\\frac\{\s*-?\d+\s*\}\{\s*\d+\s*\}|\d+\s*/\s*\d+"
    r"|\d{1,2}:\d{2}"  # a time of day
    rf"|{_NUMBER}))(?P<space>\s*)(?P<unit>.*?)\s*$",
    re.S,
)
_TOKEN_RE = re.compile(  # a unit word with its exponent (m^{-2}, s^2), or an operator
    r"\s*(?:(?P<word>[A-Za-zμÅΩ°]+)(?:\s*\^\s*(?:\{\s*(?P<e1>[-+]?\d+)\s*\}|(?P<e2>[-+]?\d+)))?"
    r"|(?P<op>/|\(|\)|·|\*))"
)


def _clean(answer: str) -> str:
    """Presentation off (math delimiters, bold, spacing, \\text wrappers), unit spellings made plain."""
    s = answer.strip().replace("**", "")
    s = re.sub(r"^\$+|\$+$|^\\\(|\\\)$|^\\\[|\\\]$", "", s).strip()
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\\degree|°", " ° ", s)
    s = re.sub(r"(?<!\\)\\[,;:! ]|\\q?quad|~|\\displaystyle", " ", s)
    s = re.sub(r"\\(?:AA|mathring\{A\})|Å", "Å", s)  # \AA and U+212B are the angstrom's Å
    s = re.sub(r"\\mu\s*|µ", "μ", s).replace("\\Omega", "Ω").replace("\\ohm", "Ω")
    s = re.sub(r"\\cdot|⋅|\\times(?=\s*[A-Za-zμÅΩ\\])", "·", s)
    s = re.sub(r"\^\s*\{?\s*\\?(?:text|mathrm)?\s*\{?\s*(?:st|nd|rd|th)\s*\}?\s*\}?", " ", s)  # 12^{\text{th}}
    for _ in range(3):
        s = _TEXT_RE.sub(r" \1 ", s)
    s = _SUPERSCRIPT_RE.sub(lambda m: "^{" + m.group().translate(_SUPERSCRIPTS) + "}", s)
    s = re.sub(r"\b([ap])\.\s*m\.?(?![A-Za-z])", r"\1m", s, flags=re.I)  # p.m. -> pm
    return re.sub(r"\s+", " ", s).strip().rstrip(".").strip()


def _canonical_token(word: str, attached: bool, any_attached: bool = False) -> str | None:
    """A unit token's canonical name, or None when the word cannot be a unit (a variable such as x)."""
    if len(word) == 1 or word == "°":
        if word not in _ONE_LETTER_UNITS or (attached and not any_attached and word not in _ONE_LETTER_ATTACHED):
            return None
        return _WORDS.get(word, word)
    if word in _SYMBOLS:
        return word
    lower = word.lower()
    if lower in _MATH_WORDS:  # 2pi is 2 times pi, not two pis
        return None
    singulars = [c for c in (lower, lower[:-2] if lower.endswith("es") else None,
                             lower[:-1] if lower.endswith("s") else None) if c]
    for candidate in singulars:
        if candidate in _WORDS:
            return _WORDS[candidate]
    for candidate in singulars:  # "kilopascals" is kPa, "microfarads" μF
        for prefix, symbol in _PREFIX_WORDS.items():
            unit = _WORDS.get(candidate[len(prefix):]) if candidate.startswith(prefix) else None
            if unit in _PREFIXABLE:
                return symbol + unit
    if not re.fullmatch(r"[A-Za-z][a-z']*|[A-Z]+", word):
        return None
    return lower[:-1] if lower.endswith("s") and len(lower) > 3 and not lower.endswith("ss") else lower


def _parse_unit(unit: str, attached: bool, any_attached: bool = False) -> str | None:
    """`m/s^2` -> `m s^-2`; None when `unit` is not a unit expression.

    Everything after a `/` (or `per`) is in the denominator up to the end of its group, so `J/mol K` is
    `J/(mol K)`, as physics and chemistry write it.
    """
    if not unit or re.search(r"\\|[^A-Za-zμÅΩ°/()·*^{}\s\d+-]", unit):
        return None
    powers: dict[str, int] = {}
    groups = [(1, 1)]  # per open group: its own sign and the sign now (a "/" makes it the opposite of its own)
    pos, first, scale, degree = 0, True, 1, False
    while pos < len(unit):
        m = _TOKEN_RE.match(unit, pos)
        if not m or m.end() == pos:
            return None
        pos = m.end()
        op, word = m.group("op"), m.group("word")
        if op in ("/", None) and (op == "/" or word.lower() == "per"):
            groups[-1] = (groups[-1][0], -groups[-1][0])
            continue
        if op == "(":
            groups.append((groups[-1][1], groups[-1][1]))
            continue
        if op == ")":
            if len(groups) == 1:
                return None
            groups.pop()
            continue
        if op:  # a multiplication sign
            continue
        if word.lower() in _POWER_WORDS:
            scale = _POWER_WORDS[word.lower()]
            continue
        if word.lower() in _FILLER_WORDS and not first:
            continue
        if degree and word.lower() in _TEMPERATURE:
            powers["°"] -= 1
            token = _TEMPERATURE[word.lower()]
        else:
            token = _canonical_token(word, attached and first, any_attached)
        if token is None:
            return None
        powers[token] = powers.get(token, 0) + int(m.group("e1") or m.group("e2") or 1) * scale * groups[-1][1]
        first, scale, degree = False, 1, token == "°"
    if len(groups) != 1:
        return None
    return " ".join(t if e == 1 else f"{t}^{e}" for t, e in sorted(powers.items()) if e != 0) or None


def split_unit(answer: str, any_attached: bool = False) -> tuple[str, str | None]:
    """Split a number's unit off an answer.

    Args:
        answer: An answer string (`9.8 \\text{ m/s}^2`, `5pm`, `12 \\text{ centimeters}`).
        any_attached: Read any one-letter unit written straight after the number as a unit (`0.64N`); by default
            only m, s, g and l are (`2N` is 2 times N). For reading a gold against the unit a prediction names.

    Returns:
        `(value, unit)`: the number as written and the unit in canonical form (`("9.8", "m s^-2")`); or
        `(answer, None)` when the answer is not a number followed by a unit (`2x`, `2 \\sqrt{3}`).

    >>> split_unit("6.02 \\\\text{ J/(mol K)}")
    ('6.02', 'J K^-1 mol^-1')
    """
    if not isinstance(answer, str) or len(answer) > 200:
        return answer, None
    m = _VALUE_RE.fullmatch(_clean(answer))
    if not m or not m.group("unit"):
        return answer, None
    unit = _parse_unit(m.group("unit"), attached=not m.group("space"), any_attached=any_attached)
    if unit is None:
        return answer, None
    return m.group("value").strip(), unit


def units_agree(gold_unit: str, pred_unit: str) -> bool:
    """Whether two units name the same one.

    Args:
        gold_unit: The gold's unit, canonical (from `split_unit`).
        pred_unit: The prediction's unit, canonical.

    Returns:
        True when they are the same; a bare degree sign agrees with °C and °F.
    """
    return gold_unit == pred_unit or {gold_unit, pred_unit} in ({"°", "°C"}, {"°", "°F"})
