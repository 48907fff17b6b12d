"""Fuzzing: extraction, normalisation, math equivalence and the B's on arbitrary text.

Model output is untrusted data: on any unicode these functions must return (never raise),
return the documented types, and finish fast (each call is timed; no catastrophic regex
backtracking, no runaway sympy arithmetic).
"""

from __future__ import annotations

import time

import pytest
import sympy  # noqa: F401  (imported up front so the timings below measure calls, not the import)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcal.collapse import (
    ExactCollapse,
    MathCollapse,
    extract_answer,
    math_label,
    normalize_answer,
)
from semcal.collapse.mathequiv import DEFAULT_TIME_BUDGET
from semcal.grade import parse_verdict, plurality
from semcal.types import NO_ANSWER, Question

# generous bounds: the machine is shared, timings are noisy
TEXT_LIMIT_S = 0.5
MATH_LIMIT_S = DEFAULT_TIME_BUDGET + 0.5

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MATH_PIECES = st.sampled_from([
    "1", "2", "9", "0", "99999999", "3.5", ".", ",", "1,000", "^", "^{", "}", "{", "(", ")", "[", "]",
    "+", "-", "−", "*", "/", "\\frac", "\\dfrac", "\\sqrt", "\\sqrt[3]", "\\cdot", "\\times", "\\pi",
    "pi", "x", "y", "z", "=", "%", "$", "\\$", " ", "\\left(", "\\right)", "\\text{ cm}", "apples",
    "\\boxed{", "²", "√", "π", "!", "e", "10^{10}", "9^9", "\\circ",
])
ANSWER_PIECES = st.sampled_from([
    "The answer is ", "Answer: ", "A: ", "I think it's ", "Probably ", "It is ", "\\boxed{", "}",
    "####", "\n", "\nQ: ", "Paris", "Paris, France", ".", " ", "42", "$1,200.00", "**", "\"",
    "<end_of_turn>", "Mt.", "J. K.", "is", "the capital of France", "\t", "answer", ":",
])

texts = st.text(max_size=400)
math_texts = st.lists(MATH_PIECES, max_size=60).map("".join)
answer_texts = st.lists(ANSWER_PIECES, max_size=60).map("".join)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


@FUZZ
@given(st.one_of(texts, answer_texts, math_texts), st.sampled_from(["qa", "math", "other"]))
def test_extract_never_crashes(text: str, task: str) -> None:
    out, dt = timed(extract_answer, text, task)
    assert out is None or (isinstance(out, str) and out.strip() == out and out)
    assert dt < TEXT_LIMIT_S


@FUZZ
@given(st.one_of(texts, answer_texts), st.text(max_size=80))
def test_extract_with_question_never_crashes(text: str, question: str) -> None:
    out, dt = timed(extract_answer, text, "qa", question=question)
    assert out is None or isinstance(out, str)
    assert dt < TEXT_LIMIT_S


@FUZZ
@given(st.one_of(texts, answer_texts))
def test_normalize_never_crashes_and_is_idempotent(text: str) -> None:
    out, dt = timed(normalize_answer, text)
    assert isinstance(out, str) and out == out.strip()
    assert "  " not in out
    assert normalize_answer(out) == out
    assert dt < TEXT_LIMIT_S


@FUZZ
@given(st.one_of(math_texts, texts))
def test_math_label_never_crashes_and_respects_budget(text: str) -> None:
    out, dt = timed(math_label, text)
    assert out is None or (isinstance(out, str) and out)
    assert dt < MATH_LIMIT_S


@FUZZ
@given(st.lists(st.one_of(answer_texts, math_texts, texts), max_size=8))
def test_collapse_functions_are_total(samples: list[str]) -> None:
    qa = Question("q", "What is the capital of France?", ("Paris",))
    math_q = Question("m", "How much?", ("1200",), task="math")
    for b, q in ((ExactCollapse(), qa), (MathCollapse(), math_q)):
        c, dt = timed(b, q, samples)
        assert len(c.labels) == len(samples)
        assert all(isinstance(x, str) and x for x in c.labels)
        assert dt < MATH_LIMIT_S * max(1, len(samples))
        # a label depends on its own text only
        for text, label in zip(samples, c.labels):
            assert b(q, [text]).labels == (label,)
        if samples:
            label, count = plurality(c.labels)
            assert 1 <= count <= len(samples)
            if label == NO_ANSWER:
                assert all(x == NO_ANSWER for x in c.labels) or count > 1


@FUZZ
@given(texts)
def test_parse_verdict_never_crashes(text: str) -> None:
    assert parse_verdict(text) in (None, "CORRECT", "INCORRECT", "NOT_ATTEMPTED")


@pytest.mark.parametrize(
    "text",
    [
        " " * 20_000 + "x",
        "answer" + " " * 20_000,
        "\nQ" + " " * 20_000,
        "the " * 5_000,
        "A" + " " * 10_000 + ":",
        "1," * 10_000,
        "1.1." * 5_000,
        "a." * 10_000 + " ",
        "\\boxed{" * 5_000,
        "{" * 10_000 + "}" * 10_000,
        "I think " * 3_000 + "Paris",
        "The answer is " * 2_000,
        "9^" * 3_000 + "9",
        "(" * 5_000,
        "\u0301" * 20_000,
        "#### " * 4_000,
    ],
    ids=lambda t: repr(t[:12]),
)
def test_adversarial_long_inputs_finish_fast(text: str) -> None:
    for task in ("qa", "math"):
        _, dt = timed(extract_answer, text, task)
        assert dt < TEXT_LIMIT_S, task
    _, dt = timed(normalize_answer, text)
    assert dt < TEXT_LIMIT_S
    _, dt = timed(math_label, text)
    assert dt < MATH_LIMIT_S
    for b, task in ((ExactCollapse(), "qa"), (MathCollapse(), "math")):
        _, dt = timed(b, Question("q", "Which?", ("x",), task=task), [text])
        assert dt < MATH_LIMIT_S
