"""Math answer equivalence without evaluating model text as code.

``math_label("$1,200.00")`` -> ``"1200"``; ``math_label("\\frac{3}{4}")``, ``"0.75"``, ``"3/4"``
-> ``"3/4"``; ``math_label("2\\sqrt{2}")`` and ``"\\sqrt{8}"`` -> ``"≈2.82842712475"``.

How it works: a small tokenizer and a recursive-descent parser read the answer and build
sympy objects directly (``sympy.Rational``, ``Add``, ``Mul``, ``Pow``, ``sqrt``, ``pi``,
``Symbol``). Nothing goes through ``sympify``/``parse_expr``/``eval`` (those run Python on
their input). The grammar covers numbers (thousands commas, decimals), ``+ - * / ^``,
implicit products ("2x", "3(4)", "2\\pi"), parentheses and braces, ``sqrt``, ``pi``,
single-letter variables and simple LaTeX (``\\frac``, ``\\dfrac``, ``\\tfrac``, ``\\sqrt[n]{}``,
``\\cdot``, ``\\times``, ``\\div``, ``\\left(``/``\\right)``, ``\\text{...}``, ``^\\circ``).
Currency signs, ``%`` and unit words ("12 apples", "5 dollars", "\\text{ cm}") are dropped;
with an ``=``, the right-hand side of the last one is taken ("x = 5" -> 5).
Two number literals side by side ("1 1/2", "2 hours 30 minutes", "3, 4") are rejected as
ambiguous rather than guessed.

Canonical labels (each a function of the text alone, so classes are well defined):

- an exact rational value: ``"p/q"`` in lowest terms, or an integer ("42", "-3/4");
  decimals are read exactly ("0.75" == "3/4", "1.50" == "3/2");
- another number (irrational, e.g. ``sqrt(2)``): ``"≈"`` and its value to 12 significant
  digits, so equal values written differently ("\\sqrt{8}", "2\\sqrt{2}") coincide;
- an expression with variables: ``"f(x)≈v1;v2"``, its values at two fixed points, so
  "2x+2" and "2(x+1)" coincide without running a simplifier;
- with ``sig_digits=k`` every number is labelled by its value to ``k`` significant digits
  (a tolerance that is still an equivalence relation: "0.333" and "1/3" meet at k=3).

Safety limits: inputs over :data:`MAX_MATH_CHARS` characters, number literals over
:data:`MAX_DIGITS` digits, nesting over :data:`MAX_DEPTH`, and powers whose result would
exceed :data:`MAX_POWER_BITS` bits ("9^9^9^9") are refused (``None``) before sympy sees
them; a wall-clock deadline (``time_budget`` seconds) is checked while parsing and before
numeric evaluation.
"""

from __future__ import annotations

import math
import re
import time
import unicodedata
from fractions import Fraction

#: longest answer the parser reads (longer ones get no math label)
MAX_MATH_CHARS = 200
#: longest number literal, in digits
MAX_DIGITS = 60
#: deepest nesting of parentheses / fractions / powers
MAX_DEPTH = 40
#: largest |exponent| accepted in a power
MAX_EXPONENT = 1000
#: largest size, in bits, of an exact power result (numerator or denominator)
MAX_POWER_BITS = 20_000
#: most distinct variables in one answer
MAX_SYMBOLS = 4
#: default wall-clock budget of one :func:`math_label` call, in seconds
DEFAULT_TIME_BUDGET = 1.0
#: significant digits of labels of non-rational numbers
IRRATIONAL_DIGITS = 12

# two fixed evaluation points per variable name (irrational-looking, away from 0 and 1)
_POINTS_A = (0.5772156649, 1.3247179572, 2.6854520010, 0.9159655942)
_POINTS_B = (1.6180339887, 0.7390851332, 3.3598856662, 1.2020569032)

_VULGAR = {"½": "(1/2)", "¼": "(1/4)", "¾": "(3/4)"}
_SUPER_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺", "0123456789-+")
#: a run of superscript digits is one exponent: "10²³" is 10^23, "10⁻¹⁹" is 10^-19
_SUPER_RUN = re.compile("[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+")
#: "3 x 10^8", "3 X 10**8": a letter x between a number and a power of ten is a times sign
_TIMES_TEN = re.compile(r"(?<=\d)[ \t]*[xX][ \t]*(?=10[ \t]*(?:\^|\*\*))")
_CHAR_MAP = {"−": "-", "–": "-", "—": "-", "×": "*", "·": "*", "⋅": "*", "∙": "*", "÷": "/",
             "π": "\\pi ", "√": "\\sqrt ", "≈": "=", "≃": "=", "°": " ", "∶": ":"}
_DEGREES = re.compile(r"\^[ \t]*\{[ \t]*\\circ[ \t]*\}|\^[ \t]*\\circ")
_DROP = re.compile(
    r"\\(?:left|right|big|Big|bigg|Bigg|displaystyle|textstyle|quad|qquad|!|,|;|:| )"
    r"|\\%|\\\$|\$|%|€|£|¥|₹|\\circ|\\degree|\\boxed|\\fbox"
)
_TEXT_GROUP = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mbox|unit|mathbf)[ \t]*\{[^{}]*\}")
_FRAC_DIGITS = re.compile(r"\\[dt]?frac[ \t]*(\d)[ \t]*(\d)")
_RELATION = re.compile(r"=|\\approx|\\sim|\\Rightarrow|\\implies|\\to")
_TOKEN = re.compile(
    r"(?P<num>(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<cmd>\\[A-Za-z]+)"
    r"|(?P<word>[A-Za-z]+)"
    r"|(?P<op>[-+*/^(){}\[\]])"
    r"|(?P<space>\s+)"
)
_COMMANDS = {
    "\\frac": "frac", "\\dfrac": "frac", "\\tfrac": "frac", "\\cfrac": "frac",
    "\\sqrt": "sqrt", "\\pi": "pi", "\\cdot": "*", "\\times": "*", "\\ast": "*", "\\div": "/",
}
_WORDS = {"sqrt": "sqrt", "pi": "pi"}


class MathParseError(ValueError):
    """The text is not a math answer the safe parser accepts (or exceeds a safety limit)."""


def math_label(
    text: str | None, *, sig_digits: int | None = None, time_budget: float = DEFAULT_TIME_BUDGET
) -> str | None:
    """The canonical label of a math answer, or None when it cannot be read as one.

    Never raises on a ``str`` and never runs the text; see the module docstring for labels.
    """
    if text is None:
        return None
    import sympy  # noqa: F401  (imported before the clock starts: the first import is slow)

    deadline = time.monotonic() + time_budget
    try:
        expr = parse_math(text, deadline=deadline)
        return canonical_label(expr, sig_digits=sig_digits, deadline=deadline)
    except (MathParseError, RecursionError, OverflowError, ZeroDivisionError, ValueError,
            TypeError, ArithmeticError):
        return None


def math_value(text: str | None, *, time_budget: float = DEFAULT_TIME_BUDGET) -> complex | None:
    """The numeric value of a variable-free math answer as a complex number, or None."""
    if text is None:
        return None
    import sympy  # noqa: F401

    deadline = time.monotonic() + time_budget
    try:
        expr = parse_math(text, deadline=deadline)
        if expr.free_symbols:
            return None
        return _numeric(expr, 17, deadline)
    except (MathParseError, RecursionError, OverflowError, ZeroDivisionError, ValueError,
            TypeError, ArithmeticError):
        return None


def math_equal(a: str, b: str, *, rel_tol: float = 1e-6, abs_tol: float = 0.0) -> bool:
    """True when two math answers have the same value within tolerance (or the same label).

    Numbers compare as ``|a - b| <= max(rel_tol * max(|a|, |b|), abs_tol)``; expressions with
    variables compare by label. This pairwise test is not transitive: use it for grading, and
    :func:`math_label` (optionally with ``sig_digits``) for collapsing.
    """
    va, vb = math_value(a), math_value(b)
    if va is not None and vb is not None:
        return abs(va - vb) <= max(rel_tol * max(abs(va), abs(vb)), abs_tol)
    la, lb = math_label(a), math_label(b)
    return la is not None and la == lb


# --------------------------------------------------------------------------- preprocessing


def preprocess(text: str) -> str:
    """Map unicode and LaTeX decoration to the parser's alphabet (linear time)."""
    if len(text) > MAX_MATH_CHARS:
        raise MathParseError(f"answer longer than {MAX_MATH_CHARS} characters")
    text = _SUPER_RUN.sub(lambda m: "^{" + m.group(0).translate(_SUPER_DIGITS) + "}", text)
    text = "".join(_VULGAR.get(ch, ch) for ch in text)
    text = unicodedata.normalize("NFKC", text)
    text = "".join(_CHAR_MAP.get(ch, ch) for ch in text)
    text = _TEXT_GROUP.sub(" ", text)
    text = _DEGREES.sub(" ", text)
    text = _DROP.sub(" ", text)
    text = _FRAC_DIGITS.sub(r"\\frac{\1}{\2}", text)
    text = _TIMES_TEN.sub("*", text).replace("**", "^")
    parts = _RELATION.split(text)
    text = parts[-1]
    return text.strip().rstrip(".")


def tokenize(text: str) -> list[tuple[str, str]]:
    """Tokens as (kind, value); kinds: num, sym, pi, sqrt, frac, op. Unit words are dropped."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise MathParseError(f"unexpected character {text[pos]!r}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(0)
        if kind == "space":
            continue
        if kind == "num":
            mantissa, _, exponent = value.lower().partition("e")
            if sum(ch.isdigit() for ch in mantissa) > MAX_DIGITS:
                raise MathParseError("number literal too long")
            if exponent and abs(int(exponent)) > MAX_EXPONENT:
                raise MathParseError("exponent too large")
            tokens.append(("num", value.replace(",", "")))
        elif kind == "cmd":
            mapped = _COMMANDS.get(value)
            if mapped is None:
                raise MathParseError(f"unsupported LaTeX command {value}")
            tokens.append(("op", mapped) if mapped in "*/" else (mapped, value))
        elif kind == "word":
            lower = value.lower()
            if lower in _WORDS:
                tokens.append((_WORDS[lower], value))
            elif len(value) == 1:
                tokens.append(("sym", value))
            # longer words are units or filler ("apples", "dollars", "cm"): dropped
        else:
            tokens.append(("op", value))
    if not tokens:
        raise MathParseError("no math in the answer")
    return tokens


# --------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over the token list, building sympy objects directly."""

    def __init__(self, tokens: list[tuple[str, str]], deadline: float):
        import sympy

        self.sp = sympy
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        self.deadline = deadline
        self.symbols: dict[str, object] = {}

    # -- helpers
    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise MathParseError("unexpected end of answer")
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.take()
        if tok != ("op", value):
            raise MathParseError(f"expected {value!r}, got {tok[1]!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise MathParseError("answer nested too deeply")
        if time.monotonic() > self.deadline:
            raise MathParseError("time budget exhausted")

    def leave(self) -> None:
        self.depth -= 1

    # -- grammar
    def parse(self):
        expr = self.expr()
        if self.peek() is not None:
            raise MathParseError(f"unexpected {self.peek()[1]!r}")
        return expr

    def expr(self):
        self.enter()
        left = self.term()
        while (tok := self.peek()) is not None and tok[0] == "op" and tok[1] in "+-":
            self.take()
            right = self.term()
            left = self.sp.Add(left, right if tok[1] == "+" else -right)
        self.leave()
        return left

    def starts_atom(self, tok: tuple[str, str] | None) -> bool:
        if tok is None:
            return False
        kind, value = tok
        return kind in ("sym", "pi", "sqrt", "frac") or (kind == "op" and value in "({[")

    def term(self):
        self.enter()
        left = self.unary()
        while True:
            tok = self.peek()
            if tok is not None and tok[0] == "op" and tok[1] in "*/":
                self.take()
                right = self.unary()
                left = self.sp.Mul(left, right) if tok[1] == "*" else _divide(self.sp, left, right)
            elif self.starts_atom(tok):  # implicit product: 2x, 3(4), 2\pi; never "2 3"
                right = self.power()
                left = self.sp.Mul(left, right)
            else:
                break
        self.leave()
        return left

    def unary(self):
        self.enter()
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] in "+-":
            self.take()
            operand = self.unary()
            result = -operand if tok[1] == "-" else operand
        else:
            result = self.power()
        self.leave()
        return result

    def power(self):
        self.enter()
        base = self.atom()
        tok = self.peek()
        if tok == ("op", "^"):
            self.take()
            exponent = self.unary()
            base = _safe_pow(self.sp, base, exponent)
        self.leave()
        return base

    def group(self):
        """A braced argument ``{...}`` or a single atom (``\\sqrt2``)."""
        tok = self.peek()
        if tok == ("op", "{"):
            self.take()
            inner = self.expr()
            self.expect("}")
            return inner
        return self.atom()

    def atom(self):
        self.enter()
        kind, value = self.take()
        sp = self.sp
        if kind == "num":
            frac = Fraction(value.replace(".e", "e").replace(".E", "E").rstrip("."))
            result = sp.Rational(frac.numerator, frac.denominator)
        elif kind == "sym":
            if value not in self.symbols:
                if len(self.symbols) >= MAX_SYMBOLS:
                    raise MathParseError("too many variables")
                self.symbols[value] = sp.Symbol(value)
            result = self.symbols[value]
        elif kind == "pi":
            result = sp.pi
        elif kind == "frac":
            num = self.group()
            den = self.group()
            result = _divide(sp, num, den)
        elif kind == "sqrt":
            index = None
            if self.peek() == ("op", "["):
                self.take()
                index = self.expr()
                self.expect("]")
            tok = self.peek()
            if tok == ("op", "("):
                self.take()
                radicand = self.expr()
                self.expect(")")
            else:
                radicand = self.group()
            if index is None:
                result = _safe_pow(sp, radicand, sp.Rational(1, 2))
            else:
                if not (index.is_Integer and 2 <= int(index) <= 100):
                    raise MathParseError("root index must be an integer from 2 to 100")
                result = _safe_pow(sp, radicand, sp.Rational(1, int(index)))
        elif kind == "op" and value in "({[":
            close = {"(": ")", "{": "}", "[": "]"}[value]
            result = self.expr()
            self.expect(close)
        else:
            raise MathParseError(f"unexpected {value!r}")
        self.leave()
        return result


def _divide(sp, num, den):
    if den == 0:
        raise MathParseError("division by zero")
    return sp.Mul(num, sp.Pow(den, -1))


def _bits(r) -> int:
    return max(abs(int(r.p)).bit_length(), abs(int(r.q)).bit_length())


def _safe_pow(sp, base, exponent):
    """``base ** exponent`` after checking that sympy will not build a gigantic number."""
    if exponent.is_Number:
        if not exponent.is_Rational:
            raise MathParseError("non-rational numeric exponent")
        p, q = int(exponent.p), int(exponent.q)
        if abs(p) > MAX_EXPONENT or q > 100:
            raise MathParseError("exponent too large")
        if base.is_Rational:
            if base == 0 and p < 0:
                raise MathParseError("division by zero")
            if _bits(base) * abs(p) > MAX_POWER_BITS:
                raise MathParseError("power too large")
            if q > 1 and _bits(base) > 400:
                raise MathParseError("root of a very large number")
        elif base.is_number:
            # e.g. (sqrt(2) + 1)^p: sympy may expand; keep p modest
            if abs(p) > 64:
                raise MathParseError("power of an irrational number too large")
    elif exponent.is_number:
        # irrational exponent (2^pi, 2^sqrt(2)): stays unevaluated; bound its size and the base's
        magnitude = exponent.evalf(15, strict=False)
        if not magnitude.is_Number or not magnitude.is_finite or abs(magnitude) > MAX_EXPONENT:
            raise MathParseError("exponent too large")
        if base.is_Rational and _bits(base) > 400:
            raise MathParseError("base too large")
    else:
        # a variable exponent: no towers (x^(x^x), 2^(2^x)), whose values explode
        for node in sp.preorder_traversal(exponent):
            if isinstance(node, sp.Pow) and node.exp.free_symbols:
                raise MathParseError("power tower with a variable exponent")
        if base.is_Pow and base.exp.free_symbols:
            raise MathParseError("power tower with a variable exponent")
    return sp.Pow(base, exponent)


def parse_math(text: str, *, deadline: float | None = None):
    """Parse a math answer into a sympy expression (raises :class:`MathParseError`)."""
    if not isinstance(text, str):
        raise MathParseError("not a string")
    if deadline is None:
        deadline = time.monotonic() + DEFAULT_TIME_BUDGET
    tokens = tokenize(preprocess(text))
    return _Parser(tokens, deadline).parse()


# --------------------------------------------------------------------------- labels


def _numeric(expr, digits: int, deadline: float) -> complex:
    if time.monotonic() > deadline:
        raise MathParseError("time budget exhausted")
    value = expr.evalf(digits, maxn=4 * digits + 40, strict=False)
    re_part, im_part = value.as_real_imag()
    if not (re_part.is_Number and im_part.is_Number):
        raise MathParseError("no numeric value")
    result = complex(float(re_part), float(im_part))
    if not (math.isfinite(result.real) and math.isfinite(result.imag)):
        raise MathParseError("value not finite")
    return result


def _round_label(expr, digits: int, deadline: float) -> str:
    if time.monotonic() > deadline:
        raise MathParseError("time budget exhausted")
    value = expr.evalf(digits + 3, maxn=4 * digits + 60, strict=False)
    re_part, im_part = value.as_real_imag()
    if not (re_part.is_Number and im_part.is_Number):
        raise MathParseError("no numeric value")

    def fmt(v) -> str:
        if v == 0:
            return "0"
        if not v.is_finite:
            raise MathParseError("value not finite")
        s = format(float(v), f".{digits}g") if abs(float(v)) < 1e300 else str(v.evalf(digits))
        return s

    label = fmt(re_part)
    if abs(float(im_part)) > 1e-12 * max(1.0, abs(float(re_part))):
        label += f"{'+' if float(im_part) >= 0 else '-'}{fmt(abs(im_part))}i"
    return label


def canonical_label(expr, *, sig_digits: int | None = None, deadline: float | None = None) -> str:
    """The label of a parsed expression (see the module docstring)."""
    import sympy as sp

    if deadline is None:
        deadline = time.monotonic() + DEFAULT_TIME_BUDGET
    if expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise MathParseError("value not finite")
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    if not symbols:
        if sig_digits is not None:
            return _round_label(expr, sig_digits, deadline)
        if expr.is_Rational:
            return str(expr)
        return "≈" + _round_label(expr, IRRATIONAL_DIGITS, deadline)
    values = []
    for points in (_POINTS_A, _POINTS_B):
        subs = {s: sp.Float(points[k], 15) for k, s in enumerate(symbols)}
        values.append(_round_label(expr.xreplace(subs), sig_digits or IRRATIONAL_DIGITS, deadline))
    names = ",".join(s.name for s in symbols)
    return f"f({names})≈{';'.join(values)}"
