"""Math equivalence with the safe parser (no eval / sympify of model text)."""

from __future__ import annotations

import time

import pytest

from semcal.collapse import mathequiv
from semcal.collapse.mathequiv import (
    MathParseError,
    math_equal,
    math_label,
    math_value,
    parse_math,
    tokenize,
)

SAME = [
    # groups of answers that must share one label
    ["1200", "$1,200.00", "1,200", "1200 dollars", "\\$1200", "1.2 \\times 10^3", "1200."],
    ["3/4", "0.75", "\\frac{3}{4}", "\\dfrac34", "\\tfrac{3}{4}", ".75", "6/8", "\\left(\\frac{3}{4}\\right)"],
    ["12", "12 apples", "x = 12", "She has 5 + 7 = 12 apples", "\\boxed{12}", "$12$", "3 \\cdot 4", "3×4", "24/2"],
    ["-5", "−5", "- 5", "(-5)", "-\\frac{10}{2}"],
    ["75", "75%", "75\\%"],
    ["2\\sqrt{2}", "\\sqrt{8}", "\\sqrt 8", "sqrt(8)", "2 sqrt(2)", "√8", "8^{1/2}", "\\sqrt[2]{8}"],
    ["\\frac{\\pi}{2}", "\\pi/2", "π/2", "0.5\\pi"],
    ["2x+2", "2(x+1)", "x+x+2", "2 \\cdot (1 + x)"],
    ["x^2", "x²", "x \\cdot x"],
    ["3", "\\sqrt[3]{27}", "27^{1/3}"],
    ["1/4", "\\left( \\frac{1}{2} \\right)^2", "2^{-2}", "0.25"],
    ["90", "90^\\circ", "90°"],
]


@pytest.mark.parametrize("group", SAME, ids=[g[0] for g in SAME])
def test_equivalent_forms_share_a_label(group: list[str]) -> None:
    labels = {s: math_label(s) for s in group}
    assert None not in labels.values(), labels
    assert len(set(labels.values())) == 1, labels


def test_different_values_differ() -> None:
    reps = [math_label(g[0]) for g in SAME]
    assert len(set(reps)) == len(reps)
    assert math_label("0.333") != math_label("1/3")
    assert math_label("2x") != math_label("2y")
    assert math_label("1945") != math_label("1944")


@pytest.mark.parametrize(
    ("text", "label"),
    [("42", "42"), ("0.75", "3/4"), ("-3/4", "-3/4"), ("1.50", "3/2"), ("\\sqrt{2}", "≈1.41421356237"),
     ("\\pi", "≈3.14159265359"), ("2^{10}", "1024"), ("sqrt(-4)", "≈0+2i")],
)
def test_label_format(text: str, label: str) -> None:
    assert math_label(text) == label


@pytest.mark.parametrize(
    "text",
    ["", "hello", "five", "1 1/2", "3, 4", "2 hours 30 minutes", "1/0", "0^{-1}", "x/(x-x)",
     "9^9^9^9", "10^{100000}", "2^(10^(1/2)*999)", "x^x^x", "2^{2^x}", "1" * 100,
     "(" * 100 + "1" + ")" * 100, "\\unknowncommand{3}", "a+b+c+d+e", "3 + ", "(3", "\\frac{1}"],
)
def test_rejected(text: str) -> None:
    assert math_label(text) is None


def test_sig_digits_is_a_coarser_equivalence() -> None:
    assert math_label("0.333", sig_digits=3) == math_label("1/3", sig_digits=3)
    assert math_label("0.34", sig_digits=3) != math_label("1/3", sig_digits=3)


def test_math_equal_and_value() -> None:
    assert math_equal("0.333333333", "1/3")
    assert not math_equal("0.33", "1/3")
    assert math_equal("$1,200", "1200.0")
    assert math_equal("2x+2", "2(x+1)")
    assert not math_equal("nonsense", "nonsense")
    assert math_value("3/4") == pytest.approx(0.75)
    assert math_value("x") is None
    assert math_value(None) is None


def test_tokenizer_drops_unit_words_and_keeps_variables() -> None:
    assert tokenize("12 apples") == [("num", "12")]
    assert tokenize("2x") == [("num", "2"), ("sym", "x")]
    with pytest.raises(MathParseError):
        tokenize("3 # 4")
    with pytest.raises(MathParseError):
        tokenize("1" * (mathequiv.MAX_DIGITS + 1))


def test_parser_builds_sympy_without_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    import sympy

    def forbidden(*args, **kwargs):
        raise AssertionError("sympify/parse_expr must not be called on model text")

    monkeypatch.setattr(sympy, "sympify", forbidden)
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", forbidden, raising=False)
    expr = parse_math("\\frac{1}{2} + x")
    assert expr == sympy.Rational(1, 2) + sympy.Symbol("x")
    # text that would run code under eval is just rejected
    assert math_label("__import__('os').system('echo hi')") is None
    assert math_label("().__class__") is None


def test_hostile_inputs_finish_fast() -> None:
    hostile = ["9^9^9^9^9", "2^1000^1000", "(((((2^999)^999)^999)^999)^999)", "\\sqrt{" * 30 + "2" + "}" * 30,
               "99999999999999999999^999", "(1+\\sqrt{2})^999", "x^999 * y^999 + (x+y)^999",
               "\\frac{1}{3}^{\\frac{1}{3}^{\\frac{1}{3}}}", "10^{10^{10}}", "1/" * 60 + "1"]
    for text in hostile:
        start = time.perf_counter()
        math_label(text)
        assert time.perf_counter() - start < 1.0, text
