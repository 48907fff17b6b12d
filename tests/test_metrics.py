"""semcal.metrics: validation, binned ECE, scores, bootstrap, summarize, property tests."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semcal.errors import InputError, SemcalError
from semcal.metrics import (
    LOG_LOSS_EPS,
    METRICS,
    accuracy,
    auroc,
    bin_stats,
    bootstrap_ci,
    bootstrap_distribution,
    brier,
    ece,
    log_loss,
    mean_confidence,
    overconfidence,
    percentile_interval,
    smece,
    smece_at,
    smooth_reliability,
    summarize,
)

ALL_METRICS = [smece, ece, brier, log_loss, auroc, accuracy, mean_confidence, overconfidence,
               functools.partial(ece, strategy="mass"), bin_stats, smooth_reliability]

# ----------------------------------------------------------------------------- validation

BAD_INPUTS = [
    ([0.5, np.nan], [1, 0], "not finite"),
    ([0.5, np.inf], [1, 0], "not finite"),
    ([0.5, 0.2], [1, np.nan], "not finite"),
    ([0.5, 0.2, 0.1], [1, 0], "different lengths"),
    ([0.5, 1.2], [1, 0], "outside [0, 1]"),
    ([-0.1, 0.2], [1, 0], "outside [0, 1]"),
    ([0.5, 0.2], [1, 2], "not 0 or 1"),
    ([0.5, 0.2], [1, 0.5], "not 0 or 1"),
    ([], [], "empty"),
    ([[0.5, 0.2]], [[1, 0]], "1-D"),
    (0.5, 1, "1-D"),
    (["a", "b"], [1, 0], "numbers"),
    (None, [1, 0], "None"),
    ([0.5, 0.2], None, "None"),
]


@pytest.mark.parametrize("fn", ALL_METRICS, ids=lambda f: getattr(f, "__name__", "ece_mass"))
@pytest.mark.parametrize("conf,correct,message", BAD_INPUTS)
def test_bad_input_raises_input_error(fn, conf, correct, message) -> None:
    if fn is auroc and message == "outside [0, 1]":
        assert 0 <= fn(conf, correct) <= 1  # AUROC takes any real score (an entropy, a count)
        return
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        fn(conf, correct)


def test_auroc_of_real_valued_scores() -> None:
    """AUROC is a rank statistic: any real score works and a monotone map leaves it unchanged."""
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.5
    s = rng.normal(size=300) + y
    assert auroc(s, y) == pytest.approx(auroc(1 / (1 + np.exp(-s)), y))
    assert auroc(-3 * s + 7, y) == pytest.approx(1 - auroc(s, y))
    with pytest.raises(InputError):
        auroc([0.1, float("nan")], [1, 0])


def test_error_names_position_and_function() -> None:
    with pytest.raises(InputError) as info:
        brier([0.1, 0.2, 1.5, 2.0], [0, 1, 1, 0])
    msg = str(info.value)
    assert "conf[2] = 1.5" in msg and "2 such values" in msg and msg.startswith("brier")


def test_inputs_not_modified() -> None:
    conf = np.array([0.9, 0.2, 1.0, 0.0])
    correct = np.array([1, 0, 1, 1])
    before = conf.copy(), correct.copy()
    summarize(conf, correct, n_boot=20)
    np.testing.assert_array_equal(conf, before[0])
    np.testing.assert_array_equal(correct, before[1])


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: ece([0.5], [1], n_bins=0), "n_bins"),
        (lambda: ece([0.5], [1], strategy="quantile"), "strategy"),
        (lambda: log_loss([0.5], [1], eps=0.7), "eps"),
        (lambda: smece_at([0.5], [1], sigma=0), "sigma"),
        (lambda: smece_at([0.5], [1], sigma=1e-6), "too small"),
        (lambda: bootstrap_ci("brier", [0.5], [1], n_boot=0), "n_boot"),
        (lambda: bootstrap_ci("brier", [0.5], [1], n_boot=2.5), "n_boot"),
        (lambda: bootstrap_ci("brier", [0.5], [1], alpha=1.5), "alpha"),
        (lambda: bootstrap_ci("nope", [0.5], [1]), "unknown metric"),
        (lambda: bootstrap_ci("brier", [0.5], [1], method="bca"), "method"),
        (lambda: summarize([0.5], [1], n_boot=-1), "n_boot"),
        (lambda: smooth_reliability([0.5], [1], mesh_pts=1), "mesh_pts"),
    ],
)
def test_bad_parameters(call, message) -> None:
    with pytest.raises(InputError, match=message):
        call()


# ----------------------------------------------------------------------------- binned ECE


def test_ece_equal_width_by_hand() -> None:
    conf = np.array([0.05, 0.15, 0.15, 0.95, 1.0])
    correct = np.array([0, 1, 0, 1, 0])
    # bins of width 0.1: {0.05}, {0.15, 0.15}, {0.95, 1.0}
    want = (abs(0.05 - 0) + abs(0.30 - 1) + abs(1.95 - 1)) / 5
    assert ece(conf, correct, n_bins=10) == pytest.approx(want, abs=1e-15)
    stats = bin_stats(conf, correct, n_bins=10)
    assert stats.count.tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert np.isnan(stats.accuracy[2])
    assert stats.mean_conf[9] == pytest.approx(0.975)
    assert stats.ece == pytest.approx(want)


def test_ece_equal_mass_keeps_ties_together() -> None:
    conf = np.r_[np.full(6, 0.2), np.full(4, 0.9)]
    correct = np.r_[np.ones(2), np.zeros(4), np.ones(3), np.zeros(1)]
    # any binning that keeps equal confidences together gives the per-level gaps
    want = (abs(6 * 0.2 - 2) + abs(4 * 0.9 - 3)) / 10
    assert ece(conf, correct, n_bins=5, strategy="mass") == pytest.approx(want)
    perm = np.random.default_rng(0).permutation(10)
    assert ece(conf[perm], correct[perm], n_bins=5, strategy="mass") == pytest.approx(want)


def test_ece_equal_mass_bins_balanced() -> None:
    rng = np.random.default_rng(1)
    conf = rng.uniform(size=1000)
    stats = bin_stats(conf, rng.integers(0, 2, 1000), n_bins=10, strategy="mass")
    assert len(stats.count) == 10 and stats.count.min() >= 99 and stats.count.max() <= 101


# ----------------------------------------------------------------------------- scores


def _auroc_pairs(conf: np.ndarray, correct: np.ndarray) -> float:
    pos, neg = conf[correct == 1], conf[correct == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_scores_by_hand() -> None:
    conf = np.array([0.9, 0.6, 0.6, 0.2])
    correct = np.array([1, 1, 0, 0])
    assert accuracy(conf, correct) == 0.5
    assert mean_confidence(conf, correct) == pytest.approx(0.575)
    assert overconfidence(conf, correct) == pytest.approx(0.075)
    assert brier(conf, correct) == pytest.approx((0.01 + 0.16 + 0.36 + 0.04) / 4)
    want_ll = -(math.log(0.9) + math.log(0.6) + math.log(0.4) + math.log(0.8)) / 4
    assert log_loss(conf, correct) == pytest.approx(want_ll)
    # pairs (pos, neg): (0.9,0.6)=1 (0.9,0.2)=1 (0.6,0.6)=0.5 (0.6,0.2)=1 -> 3.5/4
    assert auroc(conf, correct) == pytest.approx(0.875)


def test_log_loss_clip() -> None:
    # a confident wrong answer costs -log(eps), not infinity
    assert log_loss([1.0], [0]) == pytest.approx(-math.log(LOG_LOSS_EPS))
    assert log_loss([0.0], [1], eps=1e-3) == pytest.approx(-math.log(1e-3))
    assert log_loss([1.0, 0.0], [1, 0]) == pytest.approx(-math.log(1 - LOG_LOSS_EPS))


def test_auroc_one_class_is_nan() -> None:
    assert math.isnan(auroc([0.2, 0.9], [1, 1]))
    assert math.isnan(auroc([0.2, 0.9], [0, 0]))
    assert bootstrap_ci("auroc", [0.2, 0.9, 0.4], [1, 1, 1], n_boot=50) == pytest.approx(
        (float("nan"), float("nan")), nan_ok=True
    )


pairs = st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]) | st.floats(0, 1),
                 min_size=n, max_size=n),
        st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_auroc_matches_pair_count(data) -> None:
    conf, correct = np.array(data[0]), np.array(data[1], dtype=float)
    got, want = auroc(conf, correct), _auroc_pairs(conf, correct)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-12)


# ----------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs, st.randoms(use_true_random=False))
def test_permutation_invariance_and_bounds(data, rnd) -> None:
    conf, correct = np.array(data[0]), np.array(data[1], dtype=float)
    perm = np.array(rnd.sample(range(conf.size), conf.size))
    for name, fn in METRICS.items():
        a, b = float(fn(conf, correct)), float(fn(conf[perm], correct[perm]))
        if math.isnan(a):
            assert name == "auroc" and math.isnan(b)
            continue
        assert a == pytest.approx(b, abs=1e-9), name
        low, high = (-1.0, 1.0) if name == "overconfidence" else (0.0, 1.0)
        if name == "log_loss":
            high = -math.log(LOG_LOSS_EPS) + 1e-9
        assert low - 1e-12 <= a <= high + 1e-12, (name, a)


@settings(max_examples=60, deadline=None)
@given(
    c=st.sampled_from([0.0, 1.0, 0.5, 0.3, 0.99]) | st.floats(0, 1),
    n=st.integers(1, 300),
    frac=st.floats(0, 1),
)
def test_constant_confidence(c: float, n: int, frac: float) -> None:
    k = int(round(frac * n))
    correct = np.r_[np.ones(k), np.zeros(n - k)]
    conf = np.full(n, c)
    gap = abs(c - k / n)
    # binned ECE (either strategy) is exactly the gap
    assert ece(conf, correct) == pytest.approx(gap, abs=1e-12)
    assert ece(conf, correct, strategy="mass") == pytest.approx(gap, abs=1e-12)
    # smECE is the gap shrunk by its density regulariser: never above, relative shortfall < 1e-3/n
    s = smece(conf, correct).value
    assert s <= gap + 1e-12
    assert gap - s <= gap * 1e-3 / n + 1e-12
    assert overconfidence(conf, correct) == pytest.approx(c - k / n, abs=1e-12)


def test_calibrated_data_small_and_shrinking() -> None:
    def mean_smece(n: int) -> float:
        vals = []
        for seed in range(4):
            rng = np.random.default_rng(seed)
            conf = rng.beta(2, 1, size=n)
            vals.append(smece(conf, rng.uniform(size=n) < conf).value)
        return float(np.mean(vals))

    small, medium, large = mean_smece(300), mean_smece(3000), mean_smece(30000)
    assert large < medium < small
    assert small < 0.08 and large < 0.015
    # roughly n^(-1/2)-like decay: a 100x larger sample cuts it by well over 2x
    assert large < small / 2.5


def test_miscalibrated_data_detected() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, size=5000)
    correct = rng.uniform(size=5000) < conf - 0.2  # 20 points overconfident
    assert smece(conf, correct).value == pytest.approx(0.2, abs=0.02)
    assert ece(conf, correct) == pytest.approx(0.2, abs=0.02)
    assert overconfidence(conf, correct) == pytest.approx(0.2, abs=0.02)


# ----------------------------------------------------------------------------- bootstrap


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    conf = np.round(rng.beta(3, 1, size=n) * 10) / 10
    return conf, (rng.uniform(size=n) < 0.8 * conf).astype(float)


@pytest.mark.parametrize("name", list(METRICS))
def test_vectorised_bootstrap_equals_loop(name: str) -> None:
    conf, correct = _data()
    fn = METRICS[name]
    fast = bootstrap_distribution(name, conf, correct, n_boot=40, seed=7)
    slow = bootstrap_distribution(lambda c, y: float(fn(c, y)), conf, correct, n_boot=40, seed=7)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_bootstrap_reproducible_and_seeded() -> None:
    conf, correct = _data()
    a = bootstrap_ci("smece", conf, correct, n_boot=200, seed=1)
    assert a == bootstrap_ci(smece, conf, correct, n_boot=200, seed=1)
    assert a != bootstrap_ci("smece", conf, correct, n_boot=200, seed=2)
    lo, hi = a
    assert 0 <= lo < hi <= 1


def test_bootstrap_accuracy_interval_matches_normal_theory() -> None:
    rng = np.random.default_rng(3)
    n = 2000
    correct = (rng.uniform(size=n) < 0.7).astype(float)
    conf = np.full(n, 0.7)
    lo, hi = bootstrap_ci("accuracy", conf, correct, n_boot=2000, seed=0)
    p = correct.mean()
    half = 1.96 * math.sqrt(p * (1 - p) / n)
    assert lo < p < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.12)


def test_bootstrap_custom_callable_and_partial() -> None:
    conf, correct = _data()
    # a partial of a built-in metric takes the vectorised path and matches a plain callable
    fn = functools.partial(ece, n_bins=7, strategy="mass")
    a = bootstrap_distribution(fn, conf, correct, n_boot=30, seed=0)
    b = bootstrap_distribution(lambda c, y: ece(c, y, n_bins=7, strategy="mass"), conf, correct,
                               n_boot=30, seed=0)
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_basic_interval_reflects_percentiles() -> None:
    conf, correct = _data(seed=4)
    values = bootstrap_distribution("smece", conf, correct, n_boot=300, seed=0)
    qlo, qhi = percentile_interval(values, 0.1)
    est = smece(conf, correct).value
    lo, hi = bootstrap_ci("smece", conf, correct, n_boot=300, alpha=0.1, method="basic")
    assert lo == pytest.approx(max(0.0, 2 * est - qhi)) and hi == pytest.approx(2 * est - qlo)
    assert bootstrap_ci("smece", conf, correct, n_boot=300, alpha=0.1) == pytest.approx((qlo, qhi))


def test_summarize_keys_and_consistency() -> None:
    conf, correct = _data(n=300)
    s = summarize(conf, correct, n_boot=150, seed=0)
    assert s["n"] == 300 and s["n_boot"] == 150 and s["alpha"] == 0.05
    for name in METRICS:
        assert {name, f"{name}_lo", f"{name}_hi"} <= set(s)
        assert s[f"{name}_lo"] <= s[f"{name}_hi"]
    assert s["smece"] == smece(conf, correct).value
    assert s["smece_sigma"] == smece(conf, correct).sigma
    assert s["ece_mass"] == ece(conf, correct, n_bins=15, strategy="mass")
    assert s["overconfidence"] == pytest.approx(s["mean_confidence"] - s["accuracy"])
    # summarize and bootstrap_ci use the same resamples
    assert (s["brier_lo"], s["brier_hi"]) == bootstrap_ci("brier", conf, correct, 150, seed=0)
    assert (s["smece_lo"], s["smece_hi"]) == bootstrap_ci("smece", conf, correct, 150, seed=0)
    assert s["accuracy_lo"] <= s["accuracy"] <= s["accuracy_hi"]


def test_summarize_without_bootstrap() -> None:
    s = summarize([1.0, 1.0, 0.5], [1, 1, 1], n_boot=0)
    assert math.isnan(s["smece_lo"]) and math.isnan(s["auroc"])
    assert s["accuracy"] == 1.0 and s["brier"] == pytest.approx(0.25 / 3)


def test_average_ranks_equal_scipy_rankdata() -> None:
    """AUROC's ranks come from numpy (importing scipy.stats cost every CLI command ~0.5 s);
    they equal scipy's average ranks, ties included."""
    from scipy.stats import rankdata

    from semcal.metrics.scores import average_ranks

    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(1, 80))
        x = rng.integers(0, 5, n).astype(float) if rng.random() < 0.5 else rng.random(n)
        assert np.array_equal(average_ranks(x), rankdata(x, method="average"))


def test_bootstrap_draws_split_anywhere_give_the_summary_s_numbers(monkeypatch) -> None:
    """A large summary is computed in parts (ranges of resamples, in other processes) and
    handed back with ``draws=``: the parts, cut across the index chunks, must be the same
    values, so the summary is the same to the last bit."""
    import semcal.metrics.bootstrap as B

    rng = np.random.default_rng(5)
    few = rng.integers(0, 11, 300) / 10  # few distinct values, as semantic confidence has
    y = (rng.random(300) < few).astype(float)
    monkeypatch.setattr(B, "_INDEX_BUDGET", 300 * 17)  # chunks of 17 resamples
    monkeypatch.setattr(B, "_EVAL_BLOCK", 4)  # blocks of 4 within each chunk
    names = B.metric_names()
    for c in (few, np.clip(few + rng.normal(0, 0.05, 300), 0, 1)):  # and all distinct
        whole = B.summarize(c, y, n_boot=40, seed=3)
        parts = [B.bootstrap_draws(c, y, names, n_boot=40, seed=3, start=a, stop=b)
                 for a, b in ((0, 5), (5, 18), (18, 21), (21, 40))]
        draws = {n: np.concatenate([p[n] for p in parts]) for n in names}
        assert all(len(v) == 40 for v in draws.values())
        assert B.summarize(c, y, n_boot=40, seed=3, draws=draws) == whole
    starts = B.resample_blocks(300, 40)  # chunks of 17, blocks of 4 within each
    assert starts == [0, 4, 8, 12, 16, 17, 21, 25, 29, 33, 34, 38]
    # only some metrics given: the others are resampled as usual, same numbers
    assert B.summarize(c, y, n_boot=40, seed=3, draws={"smece": draws["smece"]}) == whole
    # draws that do not fit this summary are refused, not used
    with pytest.raises(SemcalError, match="draws of 'smece'"):
        B.summarize(c, y, n_boot=40, seed=3, draws={"smece": draws["smece"][:39]})
    with pytest.raises(SemcalError, match="draws of 'nope'"):
        B.summarize(c, y, n_boot=40, seed=3, draws={"nope": draws["smece"]})


def test_smece_resamples_same_with_grouped_binning() -> None:
    """Bootstrap smECE bins each resample's sums per distinct confidence (few values) instead
    of its points; the values must equal those of the per-point binning."""
    import importlib

    from semcal.metrics.bootstrap import resample_indices

    S = importlib.import_module("semcal.metrics.smece")  # the module, not the function

    rng = np.random.default_rng(2)
    c = rng.integers(0, 21, 500) / 20
    y = (rng.random(500) < c).astype(float)
    idx = next(resample_indices(500, 60, 1))
    grouped = S._smece_batch(c, y, idx)
    binned = S._Binned(c, np.stack([np.ones_like(c), c - y]), idx)
    assert binned._groups is not None
    binned._groups = None  # per point
    per_point = S._smece_search(binned)[1]
    np.testing.assert_allclose(grouped, per_point, rtol=0, atol=1e-12)
    assert S._Binned(rng.random(500), np.stack([c, c]), idx)._groups is None  # all distinct
