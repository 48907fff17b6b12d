"""Grading numbers in any notation: scientific, powers of ten, units, thousands separators,
fractions, percent. Hand-made cases (each pair read by a person: same number or not), a fuzz
over random values written in random notations, and one run through the CLI.

The bug these guard against: "6.02e23" and "1.5e23" were both labelled "23" (the exponent read
as the number), so a wrong answer was graded correct, silently.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semcal.collapse import get_collapse
from semcal.collapse.extract import extract_answer
from semcal.collapse.mathequiv import math_label
from semcal.grade import get_grader
from semcal.types import Question


def _graded(gold: str, response: str, collapse: str = "auto") -> bool:
    q = Question(id="a", question="What is the value?", answers=[gold], task="math")
    collapsed = get_collapse(collapse)(q, [response])
    return get_grader("auto")(q, collapsed, [response]).correct


# (gold, response, same number?) -- written by hand
CASES = [
    ("6.02e23", "The answer is 1.5e23.", False),
    ("6.02e23", "The answer is 6.02e23.", True),
    ("6.02e23", "6.02E+23", True),
    ("6.02e23", "The answer is 6.02 x 10^23.", True),
    ("6.02e23", "6.02 × 10²³", True),
    ("6.02e23", "602,000,000,000,000,000,000,000", True),
    ("6.02e23", "6.02e22", False),
    ("3e8", "5e8", False),
    ("3e8", "3 × 10⁸ m/s", True),
    ("3e8", "300000000", True),
    ("2.5e-3", "0.0025", True),
    ("2.5e-3", "2.5e-4", False),
    ("1.6e-19", "1.6 * 10**-19 C", True),
    ("1.6e-19", "1.6e-18", False),   # a tiny absolute difference is still a different number
    ("1.6e-19", "1.6 x 10^{-19}", True),
    ("1.6e-19", "1.6×10⁻¹⁹", True),
    ("1200", "$1,200.00", True),
    ("1200", "1,200 dollars", True),
    ("1200", "12,000", False),
    ("0.75", "3/4", True),
    ("0.75", "75%", False),           # percent is dropped: 75, not 0.75
    ("75%", "75 percent", True),
    ("12", "12 m", True),
    ("100", "100 km²", True),         # the unit's square is not the number's
    ("9.8", "9.8 m/s^2", True),
    ("1/2", "0.5 cup", True),
    ("-40", "−40 °C", True),
    ("5", "x = 5", True),
    ("2x + 3", "3 + 2x", True),
    ("2\\pi", "2 pi", True),
]


@pytest.mark.parametrize(("gold", "response", "same"), CASES)
@pytest.mark.parametrize("collapse", ["auto", "math"])
def test_hand_made_numbers_are_graded_right(gold: str, response: str, same: bool,
                                            collapse: str) -> None:
    assert _graded(gold, response, collapse) is same


def test_the_exponent_is_never_read_as_the_number() -> None:
    assert extract_answer("The answer is 1.5e23.", "math") == "1.5e23"
    assert extract_answer("so it is about 3 x 10^8 meters per second", "math",
                          style="cot", unmarked="last_number") == "3x10^8"
    assert math_label("6.02e23") == str(602 * 10**21)
    assert math_label("1.6e-19") == "1/6250000000000000000"
    # a literal 'e' without digits after it is still Euler's number times the number
    assert math_label("2e") is not None and math_label("2e").startswith("f(")


def test_huge_exponents_are_refused_not_built() -> None:
    assert math_label("1e999999999") is None
    assert math_label("1e-999999999") is None
    assert math_label("1e100") == "1" + "0" * 100


_NOTATIONS = [
    lambda m, e: f"{m}e{e}",
    lambda m, e: f"{m}E{e:+d}",
    lambda m, e: f"{m} x 10^{e}",
    lambda m, e: f"{m} × 10^{{{e}}}",
    lambda m, e: f"{m}*10**{e}",
    lambda m, e: f"The answer is {m}e{e}.",
    lambda m, e: f"{m} · 10^({e}) kg",
]


@settings(max_examples=150, deadline=None)
@given(
    mantissa=st.decimals(min_value=Decimal("1.0"), max_value=Decimal("9.99"), places=2),
    exponent=st.integers(min_value=-30, max_value=30),
    other=st.integers(min_value=-30, max_value=30),
    a=st.integers(min_value=0, max_value=len(_NOTATIONS) - 1),
    b=st.integers(min_value=0, max_value=len(_NOTATIONS) - 1),
)
def test_fuzz_scientific_notation(mantissa: Decimal, exponent: int, other: int, a: int,
                                  b: int) -> None:
    """The same value in two random notations is correct; another power of ten never is."""
    gold = f"{mantissa}e{exponent}"
    assert _graded(gold, _NOTATIONS[a](mantissa, exponent))
    assert _graded(gold, _NOTATIONS[b](mantissa, other)) is (other == exponent)


@settings(max_examples=100, deadline=None)
@given(value=st.integers(min_value=1000, max_value=10**12), delta=st.integers(min_value=1, max_value=9))
def test_fuzz_thousands_separators(value: int, delta: int) -> None:
    assert _graded(str(value), f"The total is ${value:,}.")
    other = value + max(1, value // 1000) * delta  # 0.1 % or more away: beyond the tolerance
    assert not _graded(str(value), f"The total is {other:,} dollars.")


def test_scientific_notation_through_the_cli(tmp_path: Path) -> None:
    """A run whose every sample says 1.5e23 for gold 6.02e23 has accuracy 0; 6.02 x 10^23, 1."""
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps({"id": "avogadro", "question": "What is Avogadro's number?",
                                "answer": "6.02e23", "task": "math"}) + "\n")

    def accuracy(answer: str, out: str) -> float:
        spec = tmp_path / f"{out}.toml"
        spec.write_text(f'model = "mock"\nbackend = "mock"\ndataset = "q.jsonl"\nsamples = 4\n'
                        f'style = "concise"\n[backend_options]\nanswers = ["{answer}"]\n'
                        'template = "The answer is {answer}."\n')
        run = subprocess.run(
            [sys.executable, "-m", "semcal.cli", "run", str(spec), "--out", str(tmp_path / out),
             "-q"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        got = subprocess.run(
            [sys.executable, "-m", "semcal.cli", "analyze", str(tmp_path / out), "--json",
             "--n-boot", "0"], capture_output=True, text=True, timeout=120)
        assert got.returncode == 0, got.stderr
        return json.loads(got.stdout)[0]["accuracy"]

    assert accuracy("1.5e23", "wrong") == 0.0
    assert accuracy("6.02 x 10^23", "right") == 1.0


def test_a_long_unit_like_tail_is_read_in_linear_time() -> None:
    """The number-then-unit rule reads a long letter run without backtracking blow-up."""
    import time

    start = time.monotonic()
    for n in (10, 14, 18):
        _graded("12", "12 " + "abcdefghij" * n + "!")
    assert time.monotonic() - start < 2.0
