"""Grading: plurality, correctness against B(gold), and the graders."""

from __future__ import annotations

import pytest

from fakes import verdicts
from semcal.collapse import get_collapse
from semcal.errors import InputError
from semcal.grade import (
    GRADERS,
    AutoGrader,
    Grade,
    JudgeGrader,
    LabelGrader,
    NumericGrader,
    get_grader,
    grade,
    is_correct,
    is_tied,
    parse_verdict,
    plurality,
)
from semcal.types import NO_ANSWER, REFUSAL, Collapsed, Question

PARIS = Question("q-paris", "What is the capital of France?", ("Paris",))
PENS = Question("q-pens", "How many pens?", ("1200",), task="math")


def test_plurality_counts_and_ties() -> None:
    assert plurality(["a", "b", "a"]) == ("a", 2)
    # a tie goes to the smallest label, whatever the order of the samples
    assert plurality(["b", "a", "a", "b"]) == ("a", 2)
    assert plurality(["a", "b", "b", "a"]) == ("a", 2)
    assert plurality([REFUSAL, "z", REFUSAL, "z"]) == ("z", 2)  # refusals lose ties too
    assert is_tied(["a", "b"]) and not is_tied(["a", "a", "b"]) and not is_tied(["a"])
    assert plurality([NO_ANSWER, NO_ANSWER, "x", "x"]) == ("x", 2)  # NO_ANSWER loses ties
    assert plurality(["x", NO_ANSWER, NO_ANSWER]) == (NO_ANSWER, 2)  # but wins a real majority
    assert plurality([NO_ANSWER]) == (NO_ANSWER, 1)
    with pytest.raises(InputError):
        plurality([])


def test_is_correct() -> None:
    assert is_correct("paris", {"paris", "paris france"})
    assert not is_correct("london", {"paris"})
    assert not is_correct(NO_ANSWER, {NO_ANSWER})
    assert not is_correct("paris france", {"paris"})
    assert is_correct("paris france", {"paris"}, contains=True)
    assert not is_correct("a very long answer that mentions paris somewhere in it", {"paris"}, contains=True)
    assert not is_correct("parisian", {"paris"}, contains=True)


def test_grade_end_to_end_with_exact_b() -> None:
    texts = ["Paris", "I think it's Paris, France.", "It's Paris.", "London", "Lyon"]
    c = get_collapse("exact")(PARIS, texts)
    g = grade(c)
    assert g == Grade(prediction="paris", count=2, n=5, correct=True)
    assert g.confidence == pytest.approx(0.4)
    wrong = grade(get_collapse("exact")(PARIS, ["London", "london.", "Paris"]))
    assert wrong.prediction == "london" and not wrong.correct and wrong.confidence == pytest.approx(2 / 3)
    with pytest.raises(InputError):
        grade(["paris"])  # type: ignore[arg-type]


def test_label_and_numeric_graders() -> None:
    c = Collapsed(("paris france", "paris france", "london"), frozenset({"paris"}))
    assert not LabelGrader()(PARIS, c).correct
    assert LabelGrader(contains=True)(PARIS, c).correct

    q = Question("q", "Value?", ("0.3333333333",), task="math")
    c = get_collapse("math")(q, ["1/3", "\\frac{1}{3}", "0.5"])
    assert c.labels[0] == "1/3" and c.gold == frozenset({"3333333333/10000000000"})
    assert not grade(c).correct  # exact labels differ
    assert NumericGrader()(q, c).correct  # equal within the relative tolerance
    assert not NumericGrader(rel_tol=1e-12, abs_tol=0)(q, c).correct
    c_irr = get_collapse("math")(Question("q2", "?", ("1.41421356",), task="math"), ["\\sqrt{2}"])
    assert NumericGrader(rel_tol=1e-6)(PENS, c_irr).correct
    assert not NumericGrader()(PENS, Collapsed((NO_ANSWER,), frozenset({"1200"}))).correct
    with pytest.raises(InputError):
        NumericGrader(rel_tol=-1)


def test_auto_grader_and_registry() -> None:
    g = get_grader("auto")
    assert isinstance(g, AutoGrader)
    c = get_collapse("auto")(PENS, ["$1,200.0000001", "1200.0000001"])
    assert g(PENS, c).correct  # numeric for math
    c2 = Collapsed(("paris france",), frozenset({"paris"}))
    assert not g(PARIS, c2).correct
    assert get_grader("auto", contains=True)(PARIS, c2).correct
    assert set(GRADERS) == {"exact", "numeric", "judge", "auto"}
    with pytest.raises(InputError):
        get_grader("nope")
    with pytest.raises(InputError):
        get_grader("judge")
    with pytest.raises(InputError):
        get_grader("exact", colour="red")


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("CORRECT", "CORRECT"), ("INCORRECT", "INCORRECT"), ("incorrect.", "INCORRECT"),
     ("NOT_ATTEMPTED", "NOT_ATTEMPTED"), ("Not attempted", "NOT_ATTEMPTED"), ("not-attempted", "NOT_ATTEMPTED"),
     ("**Verdict: CORRECT**", "CORRECT"), ("The response is not correct.", "INCORRECT"),
     ("This is a CORRECT answer", "CORRECT"), ("A", "CORRECT"), ("(B)", "INCORRECT"), ("C.", "NOT_ATTEMPTED"),
     ("a", None), ("Banana", None), ("", None), ("I cannot decide", None)],
)
def test_parse_verdict(reply: str, verdict: str | None) -> None:
    assert parse_verdict(reply) == verdict


def test_judge_grader() -> None:
    sampler = verdicts({"It's Paris.": "CORRECT", "No idea": "NOT_ATTEMPTED", "Lyon": "INCORRECT"})
    g = JudgeGrader(sampler)
    texts = ["Lyon", "It's Paris.", "Paris"]
    c = get_collapse("exact")(PARIS, texts)
    res = g(PARIS, c, texts)
    assert res.correct and res.verdict == "CORRECT" and res.prediction == "paris"
    assert "Reference answer(s): Paris" in sampler.prompts[0].messages[-1].content
    g(PARIS, c, texts)
    assert len(sampler.prompts) == 1  # cached
    assert all(p.temperature == 0 for p in sampler.params)  # verdicts are greedy
    c2 = get_collapse("exact")(PARIS, ["Lyon", "Lyon", "Paris"])
    assert g(PARIS, c2, ["Lyon", "Lyon", "Paris"]).verdict == "INCORRECT"
    c3 = Collapsed(("no idea",), frozenset({"paris"}))
    assert g(PARIS, c3, ["No idea"]) == Grade("no idea", 1, 1, False, "NOT_ATTEMPTED")
    c4 = Collapsed(("weird",), frozenset({"paris"}))
    assert g(PARIS, c4, ["Weird"]).verdict is None  # unparseable reply: not correct
    assert g(PARIS, Collapsed((NO_ANSWER,), frozenset({"paris"})), [""]).verdict == "NOT_ATTEMPTED"
    with pytest.raises(InputError):
        g(PARIS, c, None)
    with pytest.raises(InputError):
        JudgeGrader(object())
