"""Tests for semcal.metrics.tilt (local-loss-optimality diagnostic) on synthetic data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semcal.errors import InputError
from semcal.metrics.tilt import (
    TiltDiagnostic,
    TiltResult,
    counts_from_labels,
    platt_tilt,
    temperature_tilt,
    tempered_confidence,
    tilt_diagnostic,
)


def synthetic_counts(n: int, t_true: float, seed: int, m: int = 10):
    """Count vectors from M samples of random class distributions; the gold class is drawn from
    the *empirical* class distribution tempered by ``t_true`` (t_true = 1: the empirical
    distribution is exactly calibrated; t_true > 1: the model is overconfident)."""
    rng = np.random.default_rng(seed)
    counts, gold = [], []
    for _ in range(n):
        k = int(rng.integers(1, 6))
        c = rng.multinomial(m, rng.dirichlet(np.full(k, 0.5)))
        c = c[c > 0]
        g = (c / c.sum()) ** (1.0 / t_true)
        g /= g.sum()
        counts.append(c.tolist())
        gold.append(int(rng.choice(len(c), p=g)))
    return counts, gold


def test_tempered_confidence_by_hand():
    # f = (0.75, 0.25); T = 2 -> sqrt(.75) / (sqrt(.75) + sqrt(.25))
    want = math.sqrt(0.75) / (math.sqrt(0.75) + math.sqrt(0.25))
    assert tempered_confidence([3, 1], 2.0) == pytest.approx(want)
    assert tempered_confidence([3, 1], 1.0) == pytest.approx(0.75)
    assert tempered_confidence([1, 3], 1.0, pred_index=0) == pytest.approx(0.25)
    assert tempered_confidence([5], 0.3) == pytest.approx(1.0)  # a point mass cannot move
    assert tempered_confidence([2, 0, 2], 0.5) == pytest.approx(0.5)  # zeros stay zero


def test_calibrated_data_gives_no_gain_and_t_near_one():
    counts, gold = synthetic_counts(3000, 1.0, seed=11)
    d = tilt_diagnostic(counts, gold, seed=3)
    assert isinstance(d, TiltDiagnostic)
    for r in (d.temperature, d.platt):
        assert isinstance(r, TiltResult)
        # a held-out fit cannot beat the truth: gain at most noise, never a real improvement
        assert r.log_loss_gain < 2 * r.log_loss_gain_se + 1e-3
        assert abs(r.log_loss_gain) < 0.01
        assert r.brier_before == pytest.approx(r.brier_after, abs=0.005)
    assert d.temperature.params["T"] == pytest.approx(1.0, abs=0.08)
    assert d.platt.params["a"] == pytest.approx(1.0, abs=0.15)
    assert d.platt.params["b"] == pytest.approx(0.0, abs=0.15)
    assert len(d.temperature.fold_params) == 5


@pytest.mark.parametrize("t_true", [2.0, 0.5])
def test_miscalibrated_data_gives_gain_and_t_on_the_right_side(t_true):
    counts, gold = synthetic_counts(3000, t_true, seed=5)
    d = tilt_diagnostic(counts, gold, seed=1)
    r = d.temperature
    assert r.log_loss_gain > 3 * r.log_loss_gain_se > 0
    assert r.brier_gain > 0
    assert r.log_loss_after < r.log_loss_before
    assert r.params["T"] == pytest.approx(t_true, rel=0.15)
    lo, _hi = r.gain_ci()
    assert lo > 0
    p = d.platt
    assert p.log_loss_before == pytest.approx(r.log_loss_before)  # same questions, same conf
    assert p.log_loss_gain > 3 * p.log_loss_gain_se
    if t_true > 1:  # overconfident: the Platt slope shrinks confidences
        assert p.params["a"] < 0.9
    else:
        assert p.params["a"] > 1.1


def test_multiclass_objective_also_recovers_temperature():
    counts, gold = synthetic_counts(3000, 2.0, seed=8)
    r = temperature_tilt(counts, gold, objective="multiclass")
    assert r.objective == "multiclass"
    assert r.params["T"] == pytest.approx(2.0, rel=0.15)
    assert r.log_loss_gain > 0


def test_platt_recovers_parameters():
    rng = np.random.default_rng(0)
    n = 20000
    x = rng.normal(0.5, 1.5, size=n)
    a0, b0 = 0.6, -0.4
    conf = 1 / (1 + np.exp(-x))
    correct = rng.random(n) < 1 / (1 + np.exp(-(a0 * x + b0)))
    r = platt_tilt(conf, correct, n_folds=4, seed=2)
    assert r.params["a"] == pytest.approx(a0, abs=0.05)
    assert r.params["b"] == pytest.approx(b0, abs=0.05)
    assert r.log_loss_gain > 3 * r.log_loss_gain_se
    for fp in r.fold_params:
        assert fp["a"] == pytest.approx(a0, abs=0.1)
    # calibrated pairs: identity recovered, no gain
    cal = rng.random(n) < conf
    r = platt_tilt(conf, cal, seed=2)
    assert r.params["a"] == pytest.approx(1.0, abs=0.06)
    assert r.params["b"] == pytest.approx(0.0, abs=0.06)
    assert r.log_loss_gain < 2 * r.log_loss_gain_se + 1e-4


def test_extreme_confidences_are_finite():
    conf = [1.0, 1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 1.0, 0.0, 1.0]
    correct = [1, 0, 0, 1, 1, 1, 0, 1, 0, 1]
    r = platt_tilt(conf, correct, n_folds=2, eps=1e-3)
    vals = [r.log_loss_before, r.log_loss_after, r.brier_before, r.brier_after,
            r.params["a"], r.params["b"]]
    assert all(math.isfinite(v) for v in vals)
    # before: clipped log-loss, by hand: 2 wrong at the extremes cost -log(1e-3) each
    by_hand = (6 * -math.log(1 - 1e-3) + 2 * -math.log(1e-3) + 2 * math.log(2)) / 10
    assert r.log_loss_before == pytest.approx(by_hand)


def test_separable_data_stays_finite():
    conf = np.linspace(0.05, 0.95, 40)
    correct = conf > 0.5
    r = platt_tilt(conf, correct)
    assert math.isfinite(r.params["a"]) and r.params["a"] > 1


def test_seeded_and_reproducible():
    counts, gold = synthetic_counts(400, 1.5, seed=2)
    r1 = temperature_tilt(counts, gold, seed=7)
    r2 = temperature_tilt(counts, gold, seed=7)
    r3 = temperature_tilt(counts, gold, seed=8)
    assert r1 == r2
    assert r1.fold_params != r3.fold_params
    assert r1.params == r3.params  # the all-data fit does not depend on the folds
    d = r1.to_dict()
    assert d["param_T"] == r1.params["T"] and d["family"] == "temperature"


def test_all_unanimous_gives_identity():
    counts = [[10]] * 20
    gold = [0] * 15 + [-1] * 5
    r = temperature_tilt(counts, gold)
    assert r.params["T"] == 1.0
    assert r.log_loss_gain == pytest.approx(0.0)


def test_conf_only_diagnostic():
    d = tilt_diagnostic(conf=[0.9, 0.8, 0.6, 0.7, 0.95, 0.4], correct=[1, 1, 0, 1, 1, 0],
                        n_folds=3)
    assert d.temperature is None and d.platt.n == 6


def test_input_errors():
    with pytest.raises(InputError):
        platt_tilt([0.5, 1.2], [1, 0], n_folds=2)
    with pytest.raises(InputError):
        platt_tilt([0.5, float("nan")], [1, 0], n_folds=2)
    with pytest.raises(InputError):
        platt_tilt([0.5, 0.6], [1, 2], n_folds=2)
    with pytest.raises(InputError):
        platt_tilt([0.5, 0.6, 0.7], [1, 0], n_folds=2)
    with pytest.raises(InputError, match="too few"):
        platt_tilt([0.5, 0.6], [1, 0], n_folds=5)
    with pytest.raises(InputError):
        temperature_tilt([[1, 2], [3]], [0, 1], n_folds=2)  # gold index out of range
    with pytest.raises(InputError):
        temperature_tilt([[1, 2], []], [0, 0], n_folds=2)
    with pytest.raises(InputError):
        temperature_tilt([[1, 2], [0, 0]], [0, 0], n_folds=2)
    with pytest.raises(InputError):
        temperature_tilt([[1, 2], [3, 1]], [0, 0], n_folds=2, objective="nope")
    with pytest.raises(InputError, match="not a sampled class"):
        temperature_tilt([[1, 0], [3, 1]], [0, 0], pred_index=[1, 0], n_folds=2)
    with pytest.raises(InputError):
        tilt_diagnostic([[1]], None)
    with pytest.raises(InputError):
        tilt_diagnostic()
    with pytest.raises(InputError):
        platt_tilt([0.5, 0.6], [1, 0], n_folds=2, eps=0.7)


def test_counts_from_labels():
    counts, g = counts_from_labels(["b", "a", "a", "c", "b", "a"], frozenset({"a"}), "a")
    assert counts == [3, 2, 1] and g == 0
    counts, g = counts_from_labels(["b", "a", "a", "c", "b", "a"], frozenset({"c", "b"}), "a")
    assert counts == [3, 2, 1] and g == 1
    counts, g = counts_from_labels(["b", "b", "a"], frozenset({"z"}), "b")
    assert counts == [2, 1] and g == -1
    # a tie resolved towards the given prediction: it comes first
    counts, g = counts_from_labels(["x", "y", "y", "x"], frozenset({"y"}), "y")
    assert counts == [2, 2] and g == 0
    with pytest.raises(InputError):
        counts_from_labels(["a"], frozenset(), "b")


def test_recalibration_gain_shorthand():
    from semcal.metrics.tilt import recalibration_gain

    conf = [0.9, 0.8, 0.6, 0.7, 0.95, 0.4, 0.99, 0.3, 0.5, 0.85]
    correct = [1, 0, 0, 1, 0, 0, 1, 0, 1, 0]
    r = recalibration_gain(conf, correct, n_folds=5, seed=4)
    assert r.family == "platt" and r.gain == r.log_loss_gain
    assert r == platt_tilt(conf, correct, n_folds=5, seed=4)
