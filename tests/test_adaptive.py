"""Adaptive sampling: the Wilson stopping rule, its sequential guarantee, and the runner."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from fakes import FakeSampler, fake_collapse  # noqa: F401
from fakes import dump_store as _dump
from fakes import make_spec as _spec
from semcal.runner import (
    adaptive_z,
    n_looks,
    next_round_size,
    plurality_count,
    run,
    should_stop,
    wilson_halfwidth,
)
from semcal.spec import AdaptiveSpec
from semcal.store import Store


def test_wilson_known_values() -> None:
    # 8 of 10 at 95 %: the Wilson interval is about (0.490, 0.943)
    h = wilson_halfwidth(8, 10, 1.959964)
    assert h == pytest.approx((0.9433 - 0.4902) / 2, abs=2e-4)
    # all successes: half-width z^2 / (2 n + 2 z^2)
    z = 1.96
    assert wilson_halfwidth(20, 20, z) == pytest.approx(z * z / (40 + 2 * z * z))
    # shrinks like 1/sqrt(n)
    assert wilson_halfwidth(500, 1000, z) < wilson_halfwidth(50, 100, z) < wilson_halfwidth(5, 10, z)


def test_looks_and_z() -> None:
    ad = AdaptiveSpec(enabled=True, round=5, min_samples=10, delta=0.05, epsilon=0.1)
    assert n_looks(ad, 40) == 7  # at 10, 15, ..., 40
    assert n_looks(ad, 10) == 1
    # Bonferroni: the per-look quantile grows with the number of looks
    assert adaptive_z(ad, 10) == pytest.approx(1.959964, abs=1e-5)
    assert adaptive_z(ad, 40) > adaptive_z(ad, 20) > adaptive_z(ad, 10)


def test_round_sizes() -> None:
    ad = AdaptiveSpec(enabled=True, round=5, min_samples=12)
    assert next_round_size(0, ad, 40) == 15  # reach min_samples in whole rounds
    assert next_round_size(15, ad, 40) == 5
    assert next_round_size(38, ad, 40) == 2
    assert next_round_size(40, ad, 40) == 0


def test_stop_rule() -> None:
    ad = AdaptiveSpec(enabled=True, round=5, min_samples=10, epsilon=0.15, delta=0.05)
    assert not should_stop(["a"] * 5, ad, 60)  # below min_samples
    unanimous = next(n for n in range(10, 61, 5) if should_stop(["a"] * n, ad, 60))
    assert unanimous < 60
    assert not should_stop(["a", "b"] * 15, ad, 60)  # a 50/50 split is far from pinned down
    assert should_stop(["a", "b"] * 30, ad, 60)  # M_max reached
    assert plurality_count(["a", "b", "a", "<no answer>"]) == 2


def test_sequential_coverage() -> None:
    """Over repeated runs, the share at stopping is within epsilon of the truth >= 1 - delta."""
    ad = AdaptiveSpec(enabled=True, round=5, min_samples=10, epsilon=0.1, delta=0.1)
    m_max = 400
    rng = random.Random(0)
    for p in (0.95, 0.75):
        misses, used = 0, []
        for _ in range(300):
            labels: list[str] = []
            while True:
                labels += ["a" if rng.random() < p else "b" for _ in range(next_round_size(len(labels), ad, m_max))]
                if should_stop(labels, ad, m_max):
                    break
            share = labels.count("a") / len(labels)
            misses += abs(share - p) > ad.epsilon
            used.append(len(labels))
        assert misses / 300 <= ad.delta
        assert sum(used) / len(used) < m_max  # it does stop early
    # a concentrated question needs fewer samples than a spread one
    first = next(n for n in range(10, m_max, 5) if should_stop(["a"] * n, ad, m_max))
    assert first < 60
    k = round(0.75 * first)
    assert not should_stop(["a"] * k + ["b"] * (first - k), ad, m_max)


def test_adaptive_run_saves_samples_and_resumes(qfile: Path, tmp_path: Path) -> None:  # noqa: F811
    ad = AdaptiveSpec(enabled=True, round=5, min_samples=10, epsilon=0.15, delta=0.1)
    spec = _spec(qfile, samples=60, adaptive=ad)
    res = run(spec, tmp_path / "ref", sampler=FakeSampler(), quiet=True, collapse_fn=fake_collapse)
    assert res.complete
    d = _dump(tmp_path / "ref")
    n = {q: len(v) for q, v in d["samples"].items()}
    assert n["zqa"] < 60  # always "Paris": stops early
    assert n["zqe"] == 60  # a 50/50 question runs to M_max
    assert res.sample_fraction == pytest.approx(sum(n.values()) / (6 * 60))
    assert res.sample_fraction < 1
    for rows in d["samples"].values():
        assert [r[1] for r in rows] == list(range(len(rows)))
        assert rows[0][0] == 0 and rows[-1][0] == (len(rows) - 10) // 5
    # interrupted part-way through the rounds, then resumed: identical store content
    cut = run(spec, tmp_path / "cut", sampler=FakeSampler(interrupt_after=7), quiet=True,
              collapse_fn=fake_collapse)
    assert cut.interrupted
    res2 = run(spec, tmp_path / "cut", sampler=FakeSampler(), quiet=True, collapse_fn=fake_collapse)
    assert res2.complete
    assert _dump(tmp_path / "cut") == d
    with Store(tmp_path / "cut", readonly=True) as st:
        assert st.integrity_check() == "ok"


def test_adaptive_is_part_of_the_run_key(qfile: Path, tmp_path: Path) -> None:  # noqa: F811
    run(_spec(qfile, samples=20), tmp_path / "k", sampler=FakeSampler(), quiet=True)
    ad = AdaptiveSpec(enabled=True)
    res = run(_spec(qfile, samples=20, adaptive=ad), tmp_path / "k", sampler=FakeSampler(),
              quiet=True, collapse_fn=fake_collapse)
    assert not res.resumed
    with Store(tmp_path / "k", readonly=True) as st:
        assert [r.adaptive for r in st.runs()] == [False, True]
    assert math.isfinite(res.sample_fraction or float("nan"))


def test_adaptive_replay_on_a_fixed_run(qfile: Path, tmp_path: Path, capsys) -> None:  # noqa: F811
    from semcal.analysis import adaptive_replay, analyze_dir
    from semcal.cli import main

    run(_spec(qfile, samples=60), tmp_path / "fx", sampler=FakeSampler(), quiet=True)
    (a,) = analyze_dir(tmp_path / "fx", collapse="exact", n_boot=0)
    ad = AdaptiveSpec(enabled=True, round=5, min_samples=10, epsilon=0.15, delta=0.1)
    r = adaptive_replay(a, ad)
    used = dict(zip([q.qid for q in a.questions], r["per_question_samples"]))
    assert used["zqa"] < 60 and used["zqe"] == 60
    assert r["samples_fixed"] == 360 and r["samples_adaptive"] == sum(used.values())
    assert 0 < r["fraction"] < 1 and r["stopped_early"] >= 1
    assert r["smece_fixed"] == pytest.approx(a.summary["smece"])
    assert 0 <= r["smece_adaptive"] <= 1
    # a rule that can never stop early reproduces the fixed run exactly
    strict = AdaptiveSpec(enabled=True, round=5, min_samples=10, epsilon=0.001, delta=0.1)
    r2 = adaptive_replay(a, strict)
    assert r2["fraction"] == 1 and r2["smece_adaptive"] == pytest.approx(r2["smece_fixed"])
    assert main(["analyze", str(tmp_path / "fx"), "--collapse", "exact", "--replay-adaptive",
                 "--epsilon", "0.15", "--delta", "0.1", "--n-boot", "10"]) == 0
    out = capsys.readouterr().out
    assert "adaptive replay" in out and f"{r['samples_adaptive']}/360 samples" in out
    assert main(["analyze", str(tmp_path / "fx"), "--replay-adaptive", "--epsilon", "0.7"]) == 2
