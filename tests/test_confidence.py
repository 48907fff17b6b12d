"""Tests for semcal.confidence: hand-computed cases, parsing, fakes for the model-based estimators."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes import fixed_outputs
from semcal.confidence import (
    ESTIMATORS,
    class_probabilities_weighted,
    estimate_all,
    greedy_mean_token_prob,
    greedy_sequence_prob,
    logprob_weighted_confidence,
    max_sequence_prob,
    num_classes,
    p_true,
    p_true_from_logprobs,
    parse_verbalized,
    semantic_confidence,
    semantic_confidence_smoothed,
    semantic_entropy,
    semantic_entropy_weighted,
    verbalized_confidence,
)
from semcal.errors import InputError
from semcal.grade import plurality
from semcal.types import NO_ANSWER, Completion, Question


def comp(text: str, lps: list[float] | None) -> Completion:
    return Completion(
        text=text,
        finish_reason="stop",
        n_tokens=0 if lps is None else len(lps),
        token_logprobs=None if lps is None else tuple(lps),
    )


# --------------------------------------------------------------------------- counts


def test_semantic_confidence_hand_cases():
    assert semantic_confidence(["a", "a", "b"]) == pytest.approx(2 / 3)
    assert semantic_confidence(["a", "a", "b"], "b") == pytest.approx(1 / 3)
    assert semantic_confidence(["x"] * 5) == 1.0
    assert semantic_confidence(["a", "b", "c", "d"], "z") == 0.0


def test_plurality_default_never_prefers_no_answer_on_tie():
    labels = [NO_ANSWER, NO_ANSWER, "paris", "paris", "rome"]
    assert semantic_confidence(labels) == pytest.approx(2 / 5)
    out = estimate_all(labels, None, None)
    assert out["semantic"] == pytest.approx(2 / 5)


def test_semantic_confidence_smoothed():
    # (count + 1) / (M + K + 1): [a, a, b] -> 3 / 6
    assert semantic_confidence_smoothed(["a", "a", "b"]) == pytest.approx(0.5)
    # unanimous M = 10 -> 11 / 12, strictly below 1
    assert semantic_confidence_smoothed(["a"] * 10) == pytest.approx(11 / 12)
    # alpha = 0.5: (2 + .5) / (3 + .5 * 3)
    assert semantic_confidence_smoothed(["a", "a", "b"], alpha=0.5) == pytest.approx(2.5 / 4.5)
    with pytest.raises(InputError):
        semantic_confidence_smoothed(["a"], alpha=0)


def test_entropy_and_num_classes():
    assert semantic_entropy(["a", "a", "b", "b"]) == pytest.approx(math.log(2))
    assert semantic_entropy(["a"] * 7) == 0.0
    h = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert semantic_entropy(["a", "b", "a", "c"]) == pytest.approx(h)
    assert num_classes(["a", "b", "a", NO_ANSWER]) == 3


def test_bad_labels():
    with pytest.raises(InputError):
        semantic_confidence([])
    with pytest.raises(InputError):
        semantic_confidence("aab")


# --------------------------------------------------------------------------- log-probs


def test_weighted_class_probabilities_by_hand():
    labels = ["a", "a", "b"]
    comps = [comp("x", [-1.0, -1.0]), comp("y", [-2.0]), comp("z", [-0.5, -1.5])]
    # length-normalised: mean log-probs -1, -2, -1 -> weights e^-1, e^-2, e^-1
    w = [math.exp(-1), math.exp(-2), math.exp(-1)]
    pa = (w[0] + w[1]) / sum(w)
    probs = class_probabilities_weighted(labels, comps)
    assert probs == pytest.approx({"a": pa, "b": 1 - pa})
    assert logprob_weighted_confidence(labels, "a", comps) == pytest.approx(pa)
    h = -(pa * math.log(pa) + (1 - pa) * math.log(1 - pa))
    assert semantic_entropy_weighted(labels, comps) == pytest.approx(h)
    # total log-probs -2, -2, -2 -> uniform weights -> counts
    probs_t = class_probabilities_weighted(labels, comps, length_normalized=False)
    assert probs_t == pytest.approx({"a": 2 / 3, "b": 1 / 3})


def test_weighted_dedupe_counts_identical_texts_once():
    labels = ["a", "a", "b"]
    comps = [comp("same", [-1.0]), comp("same", [-1.0]), comp("other", [-1.0])]
    assert class_probabilities_weighted(labels, comps)["a"] == pytest.approx(2 / 3)
    assert class_probabilities_weighted(labels, comps, dedupe=True)["a"] == pytest.approx(0.5)


def test_max_sequence_prob():
    labels = ["a", "b", "a"]
    comps = [comp("1", [-1.0, -0.5]), comp("2", [-0.1]), comp("3", [-0.2, -0.2])]
    assert max_sequence_prob(labels, "a", comps) == pytest.approx(math.exp(-0.4))
    assert max_sequence_prob(labels, "a", comps, within="all") == pytest.approx(math.exp(-0.1))
    with pytest.raises(InputError):
        max_sequence_prob(labels, "a", comps, within="bogus")


def test_greedy_probs():
    g = comp("Paris", [-0.2, -0.4, -0.6])
    assert greedy_mean_token_prob(g) == pytest.approx(math.exp(-0.4))
    assert greedy_sequence_prob(g) == pytest.approx(math.exp(-1.2))
    assert greedy_mean_token_prob(None) is None
    assert greedy_sequence_prob(comp("x", None)) is None
    assert greedy_mean_token_prob(comp("", [])) is None


def test_missing_logprobs_give_none_not_crash():
    labels = ["a", "a", "b"]
    comps = [comp("x", [-1.0]), comp("y", None), comp("z", [-1.0])]
    assert class_probabilities_weighted(labels, comps) is None
    assert semantic_entropy_weighted(labels, comps) is None
    assert max_sequence_prob(labels, "a", comps) is None
    out = estimate_all(labels, "a", comps)
    assert out["semantic"] == pytest.approx(2 / 3)
    for name in ("logprob_weighted", "neg_semantic_entropy_weighted", "max_seq_prob",
                 "greedy_mean_prob", "greedy_seq_prob", "verbalized", "p_true"):
        assert out[name] is None, name
    # no completions at all
    out = estimate_all(labels, "a", None)
    assert out["logprob_weighted"] is None and out["semantic"] == pytest.approx(2 / 3)


def test_estimate_all_full():
    labels = ["a", "a", "b", "b", "a"]
    comps = [comp(str(i), [-0.1 * (i + 1)]) for i in range(5)]
    greedy = comp("g", [-0.3, -0.1])
    out = estimate_all(labels, None, comps, greedy=greedy,
                       extra={"verbalized": 0.8, "p_true": 0.65})
    assert set(out) == set(ESTIMATORS)
    assert out["semantic"] == pytest.approx(0.6)
    assert out["neg_semantic_entropy"] == pytest.approx(
        0.6 * math.log(0.6) + 0.4 * math.log(0.4))
    assert out["neg_num_classes"] == -2.0
    assert out["greedy_mean_prob"] == pytest.approx(math.exp(-0.2))
    assert out["greedy_seq_prob"] == pytest.approx(math.exp(-0.4))
    assert out["max_seq_prob"] == pytest.approx(math.exp(-0.1))
    assert out["verbalized"] == 0.8 and out["p_true"] == 0.65
    for name, v in out.items():
        if ESTIMATORS[name].is_probability:
            assert 0.0 <= v <= 1.0, name
    # model-based values that are out of range or not numbers are dropped
    bad = estimate_all(labels, None, comps, extra={"verbalized": float("nan"), "p_true": "x"})
    assert bad["verbalized"] is None and bad["p_true"] is None


def test_estimate_all_names_and_errors():
    out = estimate_all(["a"], None, None, names=["semantic", "neg_num_classes"])
    assert out == {"semantic": 1.0, "neg_num_classes": -1.0}
    with pytest.raises(InputError, match="unknown estimator"):
        estimate_all(["a"], None, None, names=["nope"])
    with pytest.raises(InputError, match="match one to one"):
        estimate_all(["a", "b"], None, [comp("x", [-1.0])])


def test_registry_flags():
    for name in ("neg_semantic_entropy", "neg_semantic_entropy_weighted", "neg_num_classes"):
        assert not ESTIMATORS[name].is_probability
    for name in ("semantic", "semantic_laplace", "logprob_weighted", "p_true", "verbalized"):
        assert ESTIMATORS[name].is_probability
    assert "greedy" in ESTIMATORS["greedy_mean_prob"].needs
    assert ESTIMATORS["greedy_mean_prob"].target == "greedy"
    assert "model" in ESTIMATORS["p_true"].needs
    assert "logprobs" in ESTIMATORS["logprob_weighted"].needs


# --------------------------------------------------------------------------- verbalised


@pytest.mark.parametrize(
    "text, expected",
    [
        ("85%", 0.85),
        ("I'm 90 percent sure", 0.90),
        ("0.7", 0.7),
        ("confidence: 100", 1.0),
        (" 85", 0.85),
        ("Confidence: 95%.\nQuestion: what is 2+2?", 0.95),
        ("On a scale of 0-100, I'd say 80", 0.80),
        ("8/10", 0.8),
        ("7 out of 10", 0.7),
        ("0,6", 0.6),
        ("100%", 1.0),
        ("0%", 0.0),
        ("I am quite sure", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("150", None),
        ("-20%", None),
        ("12/5", None),
    ],
)
def test_parse_verbalized(text, expected):
    got = parse_verbalized(text)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


# --------------------------------------------------------------------------- P(True) / fakes


def test_p_true_from_logprobs_variants():
    top = {" True": math.log(0.5), "TRUE": math.log(0.1), " False": math.log(0.2), "Paris": -1.0}
    assert p_true_from_logprobs(top) == pytest.approx(0.6 / 0.8)
    assert p_true_from_logprobs({"true": -0.1}) == pytest.approx(1.0)
    assert p_true_from_logprobs({" false": -0.1, "x": -0.2}) == pytest.approx(0.0)
    assert p_true_from_logprobs({"Paris": -0.1}) is None
    assert p_true_from_logprobs({}) is None
    assert p_true_from_logprobs(None) is None
    assert p_true_from_logprobs({"True": float("nan"), "False": -1.0}) == pytest.approx(0.0)


QS = [
    Question(id="q1", question="What is the capital of France?", answers=("Paris",)),
    Question(id="q2", question="What is 2+2?", answers=("4",), task="math"),
]


@pytest.mark.parametrize("chat", [False, True])
def test_p_true_with_fake_sampler(chat):
    s = fixed_outputs(tops=[{" True": math.log(0.3), " False": math.log(0.1)}, {"Hmm": -0.1}],
                      chat=chat)
    out = p_true(s, QS, ["Paris", "5"], k=10)
    assert out[0] == pytest.approx(0.75)
    assert out[1] is None
    assert len(s.prompts) == 2
    assert all(p.is_chat == chat for p in s.prompts)
    rendered = s.prompts[0].messages[-1].content if chat else s.prompts[0].text
    assert "capital of France" in rendered and "Paris" in rendered


def test_p_true_needs_one_answer_per_question():
    with pytest.raises(InputError):
        p_true(fixed_outputs(), QS, ["Paris"])  # lengths differ


def test_verbalized_with_fake_sampler():
    s = fixed_outputs(texts=[" 85%", " not sure"])
    out = verbalized_confidence(s, QS, ["Paris", "4"])
    assert out[0] == pytest.approx(0.85) and out[1] is None
    assert len(s.params) == 1 and s.params[0].temperature == 0 and s.params[0].greedy
    assert "Paris" in s.prompts[0].text
    assert verbalized_confidence(s, [], []) == []


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_p_true_real_model(smollm2_sampler):
    out = p_true(smollm2_sampler, QS, ["Paris", "4"], k=20)
    assert len(out) == 2
    for v in out:
        assert v is not None and 0.0 <= v <= 1.0
    verb = verbalized_confidence(smollm2_sampler, QS[:1], ["Paris"], max_tokens=12)
    assert len(verb) == 1 and (verb[0] is None or 0.0 <= verb[0] <= 1.0)


# --------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", NO_ANSWER]),
                  st.lists(st.floats(min_value=-30, max_value=0), min_size=1, max_size=4)),
        min_size=1, max_size=12,
    )
)
def test_estimator_invariants(samples):
    labels = [lab for lab, _ in samples]
    comps = [comp(str(i), lps) for i, (_, lps) in enumerate(samples)]
    k = len(set(labels))
    out = estimate_all(labels, None, comps, greedy=comps[0])
    shares = ("semantic", "semantic_laplace", "logprob_weighted", "max_seq_prob")
    if plurality(labels)[0] == NO_ANSWER:  # no answer to be confident in (grade.answer_confidence)
        assert all(out[name] == 0.0 for name in shares)
    else:
        assert 0 < out["semantic"] <= 1
        assert 0 < out["semantic_laplace"] < 1
        assert out["semantic"] >= 1 / k - 1e-12  # the plurality share is at least 1/K
        assert 0 < out["logprob_weighted"] <= 1
        assert 0 < out["max_seq_prob"] <= 1
    assert 0 <= -out["neg_semantic_entropy"] <= math.log(k) + 1e-9
    assert 0 <= -out["neg_semantic_entropy_weighted"] <= math.log(k) + 1e-9
    assert out["neg_num_classes"] == -k
    probs = class_probabilities_weighted(labels, comps)
    assert sum(probs.values()) == pytest.approx(1.0)
    assert out["greedy_seq_prob"] <= out["greedy_mean_prob"] + 1e-12
