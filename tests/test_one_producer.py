"""One producer of each number (issue 25): the report's figures draw the run's summary, the
adaptive replay grades with the run's grader, the theory diagnostics use the run's B, grader
and the metrics package, and semantic confidence is one function."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from semcal.analysis import RunAnalysis, analyze_dir
from semcal.metrics import summarize


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fakes import GOLD, FakeSampler, make_spec
    from semcal.runner import run

    tmp = tmp_path_factory.mktemp("one_producer")
    qf = tmp / "qs.jsonl"
    rows = [{"id": f"{t.lower()}{i}", "question": f"{t} which one? ({i})", "answers": [g]}
            for i in range(4) for t, g in GOLD.items()]
    qf.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run(make_spec(qf, samples=8), tmp / "exp", sampler=FakeSampler(), quiet=True)
    return tmp / "exp"


def _analysis(d: Path, **kw) -> RunAnalysis:
    (a,) = analyze_dir(d, **kw)
    return a


def test_the_report_figure_shows_the_summary_numbers_of_the_table(fake_run: Path) -> None:
    from semcal.report.html import _num, figure_curves
    from semcal.report.reliability import reliability_curve, smooth_legend

    a = _analysis(fake_run, n_boot=1000)
    s = a.summary
    (cv,) = figure_curves([(a.run.name, a)])
    assert (cv.smece, cv.smece_lo, cv.smece_hi, cv.sigma, cv.alpha) == (
        s["smece"], s["smece_lo"], s["smece_hi"], s["smece_sigma"], s["alpha"])
    legend = smooth_legend(cv)
    # the legend prints what the table prints (3 decimals), interval included
    for key in ("smece", "smece_lo", "smece_hi"):
        assert _num(s[key]) in legend, (key, legend)
    # the figure used to bootstrap its own interval with 200 resamples: another interval
    own = reliability_curve(a.confidences, a.correct, n_boot=200)
    assert (own.smece_lo, own.smece_hi) != (s["smece_lo"], s["smece_hi"])
    # a summary of other data is refused rather than drawn
    with pytest.raises(Exception, match="summary is of"):
        reliability_curve(a.confidences[:-1], a.correct[:-1], summary=s)


def test_a_curve_without_a_summary_takes_summarize_numbers() -> None:
    from semcal.report.reliability import binned_curve, reliability_curve

    rng = np.random.default_rng(1)
    c = rng.uniform(size=80)
    y = (rng.uniform(size=80) < c).astype(float)
    s = summarize(c, y, n_boot=300, seed=4, method="basic")
    cv = reliability_curve(c, y, n_boot=300, seed=4, method="basic")
    assert (cv.smece, cv.smece_lo, cv.smece_hi) == (s["smece"], s["smece_lo"], s["smece_hi"])
    b = binned_curve(c, y, n_bins=15, n_boot=300, seed=4, method="basic")
    assert (b.ece, b.ece_lo, b.ece_hi) == (s["ece"], s["ece_lo"], s["ece_hi"])


def _math_run(tmp: Path, answer: str) -> Path:
    from fakes import make_spec
    from semcal.backends.mock import MockSampler
    from semcal.runner import run

    qf = tmp / "math.jsonl"
    qf.write_text("".join(json.dumps({"id": f"m{i}", "question": f"What is pi to 5 places? {i}",
                                      "answer": "3.14159", "task": "math"}) + "\n"
                          for i in range(3)))
    sampler = MockSampler("fake", respond=lambda p, i, params: f"The answer is {answer}.")
    sampler.model_name = "fake"
    run(make_spec(qf, samples=20), tmp / "m", sampler=sampler, quiet=True)
    return tmp / "m"


def test_adaptive_replay_grades_with_the_runs_grader(tmp_path: Path) -> None:
    from semcal.analysis import adaptive_replay
    from semcal.spec import AdaptiveSpec

    d = _math_run(tmp_path, "3.14")
    strict = _analysis(d, n_boot=0)
    loose = _analysis(d, n_boot=0, grader="numeric", grader_opts={"rel_tol": 0.01})
    assert strict.summary["accuracy"] == 0.0 and loose.summary["accuracy"] == 1.0
    ad = AdaptiveSpec(enabled=True, round=5, min_samples=5, epsilon=0.15, delta=0.1)
    r = adaptive_replay(loose, ad)
    assert r["samples_adaptive"] < r["samples_fixed"]
    # the prefix is graded within the tolerance, as the run was (label equality said 0)
    assert r["accuracy_adaptive"] == 1.0 == r["accuracy_fixed"]
    assert adaptive_replay(strict, ad)["accuracy_adaptive"] == 0.0


def test_the_greedy_answer_is_graded_by_the_judge_grader(fake_run: Path) -> None:
    from fakes import replying

    judge = replying(lambda p: "CORRECT", model="fake-grader")
    a = _analysis(fake_run, n_boot=0, grader="judge", judge=judge)
    greedy = [q for q in a.questions if q.greedy_label is not None]
    assert greedy and any(q.greedy_label not in q.gold_labels for q in greedy)
    # the judge says CORRECT to everything: label equality would call some greedy answers wrong
    assert all(q.greedy_correct for q in greedy)
    assert all(q.correct for q in a.questions)


class _OnlyMilanIsRight:
    """A grader whose notion of correct differs from label membership: only "milan" is right."""

    name = "only_milan"

    def __call__(self, question, collapsed, texts=None):
        from semcal.grade import Grade, plurality

        label, count = plurality(collapsed.labels)
        return Grade(label, count, len(collapsed.labels), label == "milan")


def _last_word(question, texts):
    from semcal.types import Collapsed

    labels = tuple((t.strip(" .").split() or ["<no answer>"])[-1].lower() for t in texts)
    return Collapsed(labels, frozenset(a.lower() for a in question.answers))


def test_theory_diagnostics_grade_with_the_given_grader() -> None:
    from fakes import DirectToy
    from semcal.theory import estimate_trajectories, self_prediction
    from semcal.types import Question

    qs = [Question(id="q2", question="Capital of Quxia?", answers=("Rome",), task="qa")]
    rows = self_prediction(DirectToy(seed=3), qs, "concise", _last_word, samples=40,
                           grader=_OnlyMilanIsRight())
    (row,) = rows
    assert row.correct == (row.top_class == "milan")  # label membership would say "rome"
    assert row.confidence == pytest.approx(row.sampled[row.top_class])
    res = estimate_trajectories(DirectToy(seed=4), qs, "concise", _last_word, samples=30,
                                n_continuations=4, n_trajectories=10, fractions=(0.0, 1.0),
                                absolute=(), grader=_OnlyMilanIsRight())
    assert res.trajectories
    for t in res.trajectories:
        assert t.final_correct == (t.final_class == "milan")
        assert t.correct == (t.top_class == "milan")


def test_reproduce_theory_reads_b_with_each_style_and_grades_with_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from semcal.reproduce import driver
    from semcal.reproduce.plan import ReproduceResult

    seen: dict[str, list] = {"b": [], "traj": [], "self": []}
    monkeypatch.setattr(driver, "collapse_for",
                        lambda name, style=None, judge=None: seen["b"].append((name, style)) or
                        f"B[{style}]")
    monkeypatch.setattr(driver.tj, "estimate_trajectories",
                        lambda *a, **k: seen["traj"].append((a[3], k["grader"])) or
                        driver.tj.TrajectoryResult(model="m", style=a[2], samples=1,
                                                   n_continuations=1, temperature=1.0))
    monkeypatch.setattr(driver.sp, "self_prediction",
                        lambda *a, **k: seen["self"].append((a[3], k["grader"])) or [])
    monkeypatch.setattr(driver, "_theory_questions", lambda ds, limit: [])
    model = SimpleNamespace(model="m", name="m")
    settings = SimpleNamespace(model="m", dataset="demo", questions=2, styles=("concise", "cot"),
                               samples=2, continuations=1, trajectories=1, fractions=(0.0,),
                               absolute=(), max_tokens=None, top_k=2)
    exp = SimpleNamespace(collapse="auto", judge=None, trajectories=settings,
                          selfpredict=settings, comparisons=("trajectories", "selfpredict"),
                          datasets=["demo"], model_entry=lambda name: model, seed=0, k_shot=0,
                          n_boot=10, max_tokens={})
    monkeypatch.setattr(driver.dataclasses, "asdict", lambda s: {})
    result = ReproduceResult(out_dir=tmp_path, spec=exp)
    sampler = SimpleNamespace(model_name="m")
    driver._theory(exp, model, sampler, tmp_path, result, lambda s: None)
    assert seen["b"] == [("auto", "concise"), ("auto", "cot")]
    for kind in ("traj", "self"):
        assert [b for b, _ in seen[kind]] == ["B[concise]", "B[cot]"]
        assert all(type(g).__name__ == "AutoGrader" for _, g in seen[kind])
