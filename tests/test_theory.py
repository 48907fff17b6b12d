"""Tests of semcal.theory: intermediate B-confidence trajectories and the self-prediction test.

Pure logic is tested with a fake sampler whose class distribution is known exactly; one slow
test runs both diagnostics on the embedded base model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes import CLASSES, DirectToy, ToySampler
from semcal.errors import InputError
from semcal.metrics import auroc
from semcal.theory import (
    TrajectoryResult,
    estimate_trajectories,
    implied_class_distribution,
    kl_divergence,
    plot_self_prediction,
    plot_trajectories,
    prefix_positions,
    self_prediction,
    summarize_self_prediction,
    summarize_trajectories,
    tv_distance,
)
from semcal.theory._common import token_prefix, with_prefix
from semcal.theory.trajectories import QuestionTrajectory
from semcal.types import Collapsed, Completion, Message, Prompt, Question


def last_word(question: Question, texts: Sequence[str]) -> Collapsed:
    labels = tuple((t.strip(" .").split() or ["<no answer>"])[-1].lower() for t in texts)
    return Collapsed(labels=labels, gold=frozenset(a.lower() for a in question.answers))


QUESTIONS = [
    Question(id="q1", question="What is the capital of Zorbland?", answers=("Paris",), task="qa"),
    Question(id="q2", question="What is the capital of Quxia?", answers=("Rome",), task="qa"),
]


# ----------------------------------------------------------------------------- helpers


def test_prefix_positions_include_ends_and_round() -> None:
    assert prefix_positions(10, (0.0, 0.25, 0.5, 1.0), (1, 2, 50)) == (0, 1, 2, 5, 10)
    assert prefix_positions(0, (0.5,), (1,)) == (0,)
    assert prefix_positions(3, (), ()) == (0, 3)
    with pytest.raises(InputError):
        prefix_positions(5, (1.5,), ())
    with pytest.raises(InputError):
        prefix_positions(-1)


def test_with_prefix_base_and_chat() -> None:
    base = Prompt(text="Q: x\nA:")
    assert with_prefix(base, " The").text == "Q: x\nA: The"
    assert with_prefix(base, "") is base
    chat = Prompt(messages=(Message("user", "x"),), assistant_prefix="Answer:")
    p = with_prefix(chat, " The")
    assert p.assistant_prefix == "Answer: The" and p.messages == chat.messages and not p.text


def test_token_prefix_uses_tokens_and_clips() -> None:
    c = Completion(text=" The answer", finish_reason="stop", n_tokens=2, tokens=(" The", " answer"))
    assert token_prefix(c, 0) == ""
    assert token_prefix(c, 1) == " The"
    assert token_prefix(c, 2) == " The answer"
    odd = Completion(text=" The ans", finish_reason="stop", n_tokens=2, tokens=(" The", " answer\n"))
    assert token_prefix(odd, 2) == " The ans"
    with pytest.raises(InputError, match="token strings"):
        token_prefix(Completion(text="x", finish_reason="stop", n_tokens=1), 1)


def test_auroc_matches_pairwise_definition() -> None:
    s = [0.1, 0.4, 0.35, 0.8, 0.4]
    y = [False, False, True, True, True]
    pairs = [(a, b) for a, ya in zip(s, y) if ya for b, yb in zip(s, y) if not yb]
    expect = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert auroc(s, y) == pytest.approx(expect)  # the diagnostics' AUROC is metrics.auroc
    assert math.isnan(auroc([0.1, 0.2], [True, True]))


# ----------------------------------------------------------------------------- distances


dists = st.dictionaries(st.sampled_from("abcde"), st.floats(0.01, 1.0), min_size=1).map(
    lambda d: {k: v / sum(d.values()) for k, v in d.items()}
)


@settings(max_examples=60, deadline=None)
@given(dists, dists)
def test_tv_and_kl_properties(p: dict, q: dict) -> None:
    tv = tv_distance(p, q)
    assert 0.0 <= tv <= 1.0 + 1e-12
    assert tv == pytest.approx(tv_distance(q, p))
    assert tv_distance(p, p) == pytest.approx(0.0, abs=1e-12)
    assert kl_divergence(p, q) >= -1e-9
    assert kl_divergence(p, p) < 0.01  # only the eps smoothing


def test_tv_disjoint_is_one() -> None:
    assert tv_distance({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    with pytest.raises(InputError):
        kl_divergence({"a": 1.0}, {"a": 1.0}, eps=0)


def test_implied_distribution_hard_and_soft() -> None:
    lp = {" Paris": math.log(0.6), " Lyon": math.log(0.3), " Nice": math.log(0.05)}
    firsts = [" Paris", " Paris", " Lyon", " The", " The"]
    labels = ["paris", "paris", "lyon", "paris", "lyon"]
    q, unmapped = implied_class_distribution(lp, firsts, labels)
    assert q == pytest.approx({"paris": 0.6 / 0.9, "lyon": 0.3 / 0.9})
    assert unmapped == pytest.approx(0.1)
    # " The" is not in the top-k: its samples map nothing. Soft mode mixes classes per token.
    lp2 = {" The": math.log(0.5), " Paris": math.log(0.5)}
    q2, u2 = implied_class_distribution(lp2, firsts, labels, mode="soft")
    assert q2 == pytest.approx({"paris": 0.75, "lyon": 0.25})
    assert u2 == pytest.approx(0.0)
    q3, u3 = implied_class_distribution({" X": 0.0}, firsts, labels)
    assert q3 == {} and u3 == 1.0
    with pytest.raises(InputError):
        implied_class_distribution(lp, firsts, labels[:2])
    with pytest.raises(InputError):
        implied_class_distribution(lp, firsts, labels, mode="nope")


# ----------------------------------------------------------------------------- trajectories


def test_trajectories_on_toy_model_resolve_at_the_answer_token() -> None:
    sampler = ToySampler(think=0, seed=1)
    res = estimate_trajectories(
        sampler, QUESTIONS, "sentence", last_word, samples=40, n_continuations=40,
        n_trajectories=3, fractions=(0.0, 0.5, 1.0), absolute=(1, 2, 3, 4), seed=0,
    )
    assert isinstance(res, TrajectoryResult)
    assert len(res.trajectories) == 6
    for t in res.trajectories:
        assert t.positions[0] == 0 and t.positions[-1] == t.length == 5
        assert t.g[-1] == float(t.final_class == t.top_class)
        # after " The answer is X" (4 tokens) the class is fixed: g is exactly 0 or 1
        j4 = t.positions.index(4)
        assert t.g[j4] == t.g[-1]
        # before the answer token g estimates the probability of z* (0.7 for q1, 0.5 for q2)
        p_top = CLASSES[t.question_id][t.top_class]
        assert abs(t.g[0] - p_top) < 0.25
        assert all(0.0 <= g <= 1.0 for g in t.g)
    summ = summarize_trajectories(res, grid=(0.0, 0.5, 0.8, 1.0), n_boot=50)
    rows = {r["fraction"]: r for r in summ["rows"]}
    assert rows[1.0]["brier"] == 0.0
    assert rows[0.8]["brier"] == 0.0  # token 4 of 5 = fraction 0.8: resolved
    assert rows[0.0]["brier"] > 0.0
    assert summ["half_resolution_fraction"] is not None and summ["half_resolution_fraction"] <= 0.8


def test_late_decision_keeps_g_unresolved_longer() -> None:
    kw = dict(samples=30, n_continuations=30, n_trajectories=4, fractions=(0.0, 0.5, 1.0),
              absolute=(), seed=0)
    direct = estimate_trajectories(DirectToy(seed=2), QUESTIONS, "sentence", last_word, **kw)
    late = estimate_trajectories(ToySampler(think=10, seed=2), QUESTIONS, "cot", last_word, **kw)
    d = {r["fraction"]: r for r in summarize_trajectories(direct, (0.0, 0.5), n_boot=20)["rows"]}
    lt = {r["fraction"]: r for r in summarize_trajectories(late, (0.0, 0.5), n_boot=20)["rows"]}
    assert d[0.5]["brier"] == 0.0  # the answer is the first token
    assert lt[0.5]["brier"] > 0.05  # half-way through the "reasoning" nothing is decided


def test_every_prompt_gets_its_own_seed() -> None:
    """Backends derive sample i's seed from (params.seed, i): prompts must not share a seed."""

    rec = ToySampler(think=2)
    estimate_trajectories(rec, QUESTIONS, "cot", last_word, samples=4, n_continuations=2,
                          n_trajectories=2, fractions=(0.0, 0.5, 1.0), absolute=(), seed=7)
    seeds = [sd for _, sd in rec.calls]
    assert len(seeds) == len(set(seeds))  # reference and continuation prompts all differ
    rec2 = ToySampler(think=2)
    estimate_trajectories(rec2, QUESTIONS, "cot", last_word, samples=4, n_continuations=2,
                          n_trajectories=2, fractions=(0.0, 0.5, 1.0), absolute=(), seed=7)
    assert [sd for _, sd in rec2.calls] == seeds  # reproducible


def test_trajectory_input_errors() -> None:
    with pytest.raises(InputError):
        estimate_trajectories(ToySampler(), QUESTIONS, "sentence", last_word, samples=2,
                              n_trajectories=3)
    with pytest.raises(InputError):
        estimate_trajectories(ToySampler(), [], "sentence", last_word)


def test_trajectory_result_roundtrip_and_plot(tmp_path) -> None:
    t = QuestionTrajectory(
        question_id="a", style="cot", trajectory=0, length=4, positions=(0, 2, 4),
        g=(0.5, 0.75, 1.0), p_correct=(0.5, 0.5, 1.0), top_class="x", confidence=0.6,
        correct=True, final_class="x", final_correct=True,
    )
    assert t.g_at(0.0) == 0.5 and t.g_at(0.6) == 0.75 and t.g_at(1.0) == 1.0
    res = TrajectoryResult("m", "cot", 5, 4, 1.0, [t])
    back = TrajectoryResult.from_dict(res.to_dict())
    assert back.trajectories == [t]
    p = plot_trajectories([res], tmp_path / "t.png")
    assert p.stat().st_size > 1000


# ----------------------------------------------------------------------------- self-prediction


def test_self_prediction_direct_vs_template_first_token(tmp_path) -> None:
    direct = self_prediction(DirectToy(seed=3), QUESTIONS, "concise", last_word, samples=200)
    templ = self_prediction(ToySampler(seed=3), QUESTIONS, "sentence", last_word, samples=200)
    for r in direct:
        assert r.unmapped_mass == pytest.approx(0.0, abs=1e-9)
        assert r.implied == pytest.approx(CLASSES[r.question_id], abs=1e-9)
        assert r.tv < 0.1  # only sampling noise
    for r in templ:
        # every sample starts with " The": all mass goes to one class
        assert len(r.implied) == 1
        assert r.tv == pytest.approx(1.0 - max(r.sampled.values()), abs=1e-9)
    sd = summarize_self_prediction(direct, n_boot=50)
    stt = summarize_self_prediction(templ, n_boot=50)
    assert sd["mean_tv"] < stt["mean_tv"]
    assert sd["mean_tv_ci"][0] <= sd["mean_tv"] <= sd["mean_tv_ci"][1]
    p = plot_self_prediction({"concise": direct, "sentence": templ}, tmp_path / "s.png")
    assert p.stat().st_size > 1000


def test_theory_on_embedded_base_model(gemma_sampler) -> None:
    from semcal.collapse import get_collapse
    from semcal.data import bundled

    qs = bundled("world")[:2]
    collapse = get_collapse("auto")
    res = estimate_trajectories(gemma_sampler, qs, "sentence", collapse, samples=3,
                                n_continuations=2, fractions=(0.0, 0.5, 1.0), absolute=(),
                                seed=0)
    assert len(res.trajectories) >= 1
    for t in res.trajectories:
        assert t.positions[0] == 0 and t.positions[-1] == t.length
        assert all(0.0 <= g <= 1.0 for g in t.g)
        assert t.g[-1] in (0.0, 1.0)
    rows = self_prediction(gemma_sampler, qs, "concise", collapse, samples=4, top_k=10)
    assert len(rows) == 2
    for r in rows:
        assert 0.0 <= r.tv <= 1.0 and 0.0 <= r.unmapped_mass <= 1.0
        assert sum(r.sampled.values()) == pytest.approx(1.0)
