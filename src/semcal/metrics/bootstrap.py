"""Percentile bootstrap confidence intervals for any metric, and :func:`summarize`.

Resampling draws ``n_boot`` rows of ``n`` point indices (with replacement) from
``numpy.random.default_rng(seed)``, in chunks of at most ~2M indices (so memory stays bounded),
in an order that depends only on ``(n, n_boot, seed)``: every metric bootstrapped with the same
arguments sees the same resamples, so intervals from :func:`summarize` and from
:func:`bootstrap_ci` agree.

The built-in metrics (and ``functools.partial`` of them with keyword arguments) are evaluated on
a whole chunk of resamples at once: mean-type scores by fancy indexing, binned ECE and AUROC by
offset ``bincount``s, smECE by running all the bisections in lock-step and sharing each kernel
FFT among the resamples that need the same bandwidth. Any other callable
``fn(conf, correct) -> float`` works too and is called once per resample.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from semcal.errors import InputError, SemcalError
from semcal.metrics._validate import check_alpha, check_n_boot, check_pair
from semcal.metrics.binned import _ece_batch, ece
from semcal.metrics.scores import (
    _accuracy_batch,
    _auroc_batch,
    _brier_batch,
    _log_loss_batch,
    _mean_confidence_batch,
    _overconfidence_batch,
    accuracy,
    auroc,
    brier,
    log_loss,
    mean_confidence,
    overconfidence,
)
from semcal.metrics.smece import _check_sigma, _smece_batch, _smooth_curve_batch, smece
from semcal.metrics.tilt import recalibration_gain
from semcal.registry import Registry

__all__ = [
    "CI_METHODS",
    "METRICS",
    "bootstrap_ci",
    "bootstrap_distribution",
    "cluster_bootstrap",
    "metric_names",
    "metric_range",
    "percentile_interval",
    "reliability_band",
    "resample_indices",
    "summarize",
]

MetricFn = Callable[[Any, Any], Any]

#: Named metrics, in the order :func:`summarize` reports them (semcal.registry). What the
#: bootstrap needs to know about a metric is metadata of its registration:
#:
#: - ``range=(lo, hi)``: the metric's range; "basic" intervals are clipped to it (default: none).
#: - ``batched=impl``: ``impl(conf, correct, index) -> values``, the metric on every row of an
#:   index matrix of resamples at once, taking the metric's keyword options (default: the
#:   metric is called once per resample).
#: - ``needs="probability"`` (confidence read as P(correct), the default) or ``"score"`` (only
#:   the ordering of the confidences matters, e.g. AUROC): which estimators it applies to.
#: - ``options=("n_bins",)``: keyword arguments of :func:`summarize` the metric takes.
#: - ``reports=("sigma",)``: attributes of the metric's value that :func:`summarize` reports
#:   too, as ``<name>_<attribute>`` (``smece_sigma``).
METRICS: Registry[MetricFn] = Registry("metric")
_UNIT = (0.0, 1.0)
METRICS.register("smece", smece, range=_UNIT, batched=_smece_batch, needs="probability",
                 reports=("sigma",))
METRICS.register("ece", ece, range=_UNIT, batched=_ece_batch, needs="probability",
                 options=("n_bins",))
METRICS.register("ece_mass", functools.partial(ece, strategy="mass"), range=_UNIT,
                 batched=functools.partial(_ece_batch, strategy="mass"), needs="probability",
                 options=("n_bins",))
METRICS.register("brier", brier, range=_UNIT, batched=_brier_batch, needs="probability")
METRICS.register("log_loss", log_loss, range=(0.0, float("inf")), batched=_log_loss_batch,
                 needs="probability")
METRICS.register("auroc", auroc, range=_UNIT, batched=_auroc_batch, needs="score")
METRICS.register("accuracy", accuracy, range=_UNIT, batched=_accuracy_batch,
                 needs="probability")
METRICS.register("mean_confidence", mean_confidence, range=_UNIT,
                 batched=_mean_confidence_batch, needs="probability")
METRICS.register("overconfidence", overconfidence, range=(-1.0, 1.0),
                 batched=_overconfidence_batch, needs="probability")


def metric_range(name: str) -> tuple[float, float] | None:
    """The range ``name`` was registered with (None: unbounded, no clipping)."""
    return METRICS.meta(name).get("range")


def metric_names(needs: str | None = None) -> tuple[str, ...]:
    """The registered metrics, or those that need a ``"probability"`` (every metric applies to
    one) or make sense for a mere ``"score"`` (only those registered ``needs="score"``)."""
    if needs is None or needs == "probability":
        return METRICS.names()
    return tuple(n for n in METRICS if METRICS.meta(n).get("needs", "probability") == needs)


#: Interval constructions: "percentile" (quantiles of the bootstrap values) or "basic"
#: (the quantiles reflected about the estimate, ``2 * estimate - q``, which corrects the
#: upward resampling bias of calibration errors; clipped to the metric's range).
CI_METHODS = ("percentile", "basic")

_INDEX_BUDGET = 1 << 21  # indices per chunk of resamples (16 MB of int64)


def _resolve(fn: MetricFn | str, where: str) -> MetricFn:
    if isinstance(fn, str):
        if fn not in METRICS:
            raise InputError(
                f"unknown metric {fn!r}; known: {', '.join(METRICS)}", where=where
            )
        return METRICS[fn]
    if not callable(fn):
        raise InputError(f"fn must be a metric name or a callable, got {fn!r}", where=where)
    return fn


def _registered_name(fn: MetricFn) -> str | None:
    """The name ``fn`` is registered under (None for an unregistered callable)."""
    return next((k for k, v in METRICS.items() if v is fn), None)


def _batched(fn: MetricFn) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None:
    """The batched form (registration metadata) of a registered metric, or of a keyword-only
    ``functools.partial`` of one; None for any other callable."""
    kwargs: dict[str, Any] = {}
    base = fn
    if isinstance(fn, functools.partial) and _registered_name(fn) is None:
        if fn.args:
            return None
        base, kwargs = fn.func, dict(fn.keywords)
    name = _registered_name(base)
    impl = METRICS.meta(name).get("batched") if name is not None else None
    if impl is None:
        return None
    return functools.partial(impl, **kwargs) if kwargs else impl


def resample_indices(n: int, n_boot: int, seed: int | None = 0) -> Iterator[np.ndarray]:
    """Yield bootstrap index matrices of shape (rows, n), ``n_boot`` rows in all.

    The chunking depends only on ``n``, so the sequence of resamples depends only on
    ``(n, n_boot, seed)``.
    """
    rng = np.random.default_rng(seed)
    rows = max(1, min(n_boot, _INDEX_BUDGET // max(n, 1)))
    for start in range(0, n_boot, rows):
        yield rng.integers(0, n, size=(min(rows, n_boot - start), n))


#: resamples evaluated together by a batched metric. A batched value can differ in its last
#: bit with the rows computed beside it (vectorised FFT lanes, reduction order), so rows are
#: always evaluated in the same blocks (counted from the start of each index chunk): a
#: resample's value is then the same whether a summary is computed whole or in parts.
_EVAL_BLOCK = 256


def resample_blocks(n: int, n_boot: int) -> list[int]:
    """Where the blocks of resamples that batched metrics evaluate together begin, counted
    over the whole sequence for ``(n, n_boot)``: the places where a summary can be cut into
    parts (see :func:`bootstrap_draws`) without evaluating any block twice."""
    rows = max(1, min(n_boot, _INDEX_BUDGET // max(n, 1)))
    return [chunk + b for chunk in range(0, n_boot, rows)
            for b in range(0, min(rows, n_boot - chunk), _EVAL_BLOCK)]


def _evaluate(fn: MetricFn, c: np.ndarray, y: np.ndarray, index: np.ndarray,
              rows: tuple[int, int] | None = None) -> np.ndarray:
    """Values of ``fn`` on the resamples ``index[rows[0]:rows[1]]`` of one index chunk (all
    of them for None)."""
    a, b = (0, len(index)) if rows is None else rows  # (start, stop) within this chunk
    impl = _batched(fn)
    if impl is None:
        return np.array([float(fn(c[row], y[row])) for row in index[a:b]], dtype=np.float64)
    parts = []
    for start in range(a - a % _EVAL_BLOCK, b, _EVAL_BLOCK):
        block = np.asarray(impl(c, y, index[start : start + _EVAL_BLOCK]), dtype=np.float64)
        parts.append(block[max(a - start, 0) : b - start])
    return np.concatenate(parts) if parts else np.empty(0)


def bootstrap_draws(
    conf: Any, correct: Any, names: Any, n_boot: int = 1000, seed: int | None = 0,
    start: int = 0, stop: int | None = None, n_bins: int = 15,
) -> dict[str, np.ndarray]:
    """The values of the metrics ``names`` on resamples ``start`` to ``stop`` of the sequence
    :func:`summarize` draws for ``(n, n_boot, seed)``: one array per name, of ``stop - start``
    values, equal to the matching slice of what :func:`summarize` computes itself.

    A resample's value does not depend on which other resamples are evaluated with it, so
    a large summary can be split into row ranges, computed in several processes and handed
    back whole as ``summarize(..., draws=...)`` with the same numbers."""
    where = "bootstrap_draws"
    c, y = check_pair(conf, correct, where=where)
    nb = check_n_boot(n_boot, where, allow_zero=True)
    stop = nb if stop is None else min(int(stop), nb)
    start = max(0, int(start))
    metrics = _summary_metrics(_chosen(names, where), n_bins=n_bins)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in metrics}
    pos = 0
    for idx in resample_indices(c.size, nb, seed):  # every chunk is drawn: the stream is one
        a, b = max(start - pos, 0), min(stop - pos, len(idx))
        if a < b:
            for name, fn in metrics.items():
                parts[name].append(_evaluate(fn, c, y, idx, (a, b)))
        pos += len(idx)
        if pos >= stop:
            break
    return {name: np.concatenate(v) if v else np.empty(0) for name, v in parts.items()}


def bootstrap_distribution(
    fn: MetricFn | str, conf: Any, correct: Any, n_boot: int = 1000, seed: int | None = 0
) -> np.ndarray:
    """Values of ``fn`` on ``n_boot`` paired resamples of (conf, correct); shape (n_boot,).

    ``fn`` is a metric name from :data:`METRICS` or any ``fn(conf, correct) -> float``
    (``SmeceResult`` is converted with ``float``). Resamples where the metric is undefined
    (AUROC with one class) give NaN.
    """
    where = "bootstrap_distribution"
    metric = _resolve(fn, where)
    c, y = check_pair(conf, correct, where=where)
    nb = check_n_boot(n_boot, where)
    parts = [_evaluate(metric, c, y, idx) for idx in resample_indices(c.size, nb, seed)]
    return np.concatenate(parts)


def cluster_bootstrap(
    stat: Callable[[np.ndarray], float],
    n_units: int,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of any statistic of ``n_units`` units (questions,
    trajectories), resampled with replacement: ``stat(idx)`` gets an int array of resampled unit
    indices and returns a float (NaN allowed, ignored). ``(nan, nan)`` when there are no units,
    no resamples or no finite value.

    The theory diagnostics use it for statistics that are not a metric of (conf, correct) pairs
    (a mean TV distance, a correlation, an AUROC of one column of a matrix). The resamples are
    those of :func:`resample_indices` with the same ``(n_units, n_boot, seed)``.
    """
    if n_units < 1 or n_boot < 1:
        return float("nan"), float("nan")
    values = np.array([float(stat(row)) for idx in resample_indices(n_units, n_boot, seed)
                       for row in idx])
    values[~np.isfinite(values)] = np.nan  # an undefined replicate is left out
    return percentile_interval(values, alpha)


def percentile_interval(values: Any, alpha: float = 0.05) -> tuple[float, float]:
    """Central ``1 - alpha`` percentile interval of bootstrap ``values`` (NaNs ignored).

    Returns ``(nan, nan)`` when every value is NaN.
    """
    a = check_alpha(alpha, "percentile_interval")
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(v, [a / 2, 1 - a / 2])
    return float(lo), float(hi)


def _check_method(method: Any, where: str) -> str:
    if method not in CI_METHODS:
        raise InputError(f"method must be one of {', '.join(CI_METHODS)}; got {method!r}",
                         where=where)
    return str(method)


def _interval(
    values: np.ndarray, alpha: float, method: str, estimate: float,
    bounds: tuple[float, float] | None,
) -> tuple[float, float]:
    lo, hi = percentile_interval(values, alpha)
    if method == "basic" and not np.isnan(lo):
        lo, hi = 2 * estimate - hi, 2 * estimate - lo
        if bounds is not None:
            lo, hi = float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))
    return lo, hi


def bootstrap_ci(
    fn: MetricFn | str,
    conf: Any,
    correct: Any,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int | None = 0,
    method: str = "percentile",
) -> tuple[float, float]:
    """Bootstrap ``1 - alpha`` confidence interval ``(lo, hi)`` of a metric.

    ``conf``, ``correct``: arrays (n,); ``fn``: a name from :data:`METRICS` or a callable
    ``fn(conf, correct) -> float``. ``method="percentile"`` (default): quantiles
    ``alpha/2, 1 - alpha/2`` of the bootstrap values. Calibration errors (smECE, ECE) are biased
    upward on resamples, so with little miscalibration the percentile interval can lie entirely
    above the estimate; ``method="basic"`` reflects the quantiles about the estimate instead
    (clipped to the metric's range for named metrics). Seeded and reproducible; ``(nan, nan)``
    when the metric is undefined on every resample.
    """
    where = "bootstrap_ci"
    a = check_alpha(alpha, where)
    m = _check_method(method, where)
    metric = _resolve(fn, where)
    values = bootstrap_distribution(metric, conf, correct, n_boot, seed)
    estimate = float("nan")
    if m == "basic":
        c, y = check_pair(conf, correct, where=where)
        estimate = float(metric(c, y))
    name = fn if isinstance(fn, str) else _registered_name(fn)
    bounds = metric_range(name) if name is not None else None
    return _interval(values, a, m, estimate, bounds)


def summarize(
    conf: Any,
    correct: Any,
    n_boot: int = 1000,
    seed: int | None = 0,
    alpha: float = 0.05,
    n_bins: int = 15,
    method: str = "percentile",
    tilt: bool = False,
    allow_empty: bool = False,
    only: Any = None,
    draws: Any = None,
) -> dict[str, Any]:
    """Every metric with its percentile bootstrap interval, as one flat dict.

    Keys: ``n``, ``n_boot``, ``alpha``, ``method``, ``smece_sigma`` and, for each name in :data:`METRICS`
    (``smece, ece, ece_mass, brier, log_loss, auroc, accuracy, mean_confidence,
    overconfidence``), ``name``, ``name_lo`` and ``name_hi``. ``ece``/``ece_mass`` use
    ``n_bins`` bins. With ``n_boot=0`` no resampling is done and the bounds are NaN. All metrics
    share the same resamples. ``method``: interval construction, see :func:`bootstrap_ci`.

    With ``tilt=True`` also the local-loss-optimality diagnostic of
    :func:`semcal.metrics.tilt.recalibration_gain` (5-fold, ``seed``): ``tilt_gain`` and
    ``tilt_gain_se`` (held-out log-loss gain, nats) and ``tilt_brier_gain``; NaN unless there
    are at least :data:`TILT_MIN_N` questions with both outcomes.

    ``only``: the names of the metrics to report (default: every registered one); a metric's
    value and interval do not depend on which others are asked for (the resamples are the
    same), so a figure that needs only smECE shows the numbers a full summary would.

    This is the one summary of (confidence, correct) pairs: ``analyze``, ``report`` and
    ``reproduce`` all show what it returns. ``allow_empty=True``: no pairs give ``n = 0`` and NaN
    everywhere instead of an error.

    ``draws``: resample values computed elsewhere by :func:`bootstrap_draws` with the same
    ``(conf, correct, n_boot, seed, n_bins)``, as {metric name: array of ``n_boot`` values};
    the metrics it names are not resampled again (the numbers are the same).
    """
    where = "summarize"
    if allow_empty and np.asarray(conf).size == 0 and np.asarray(correct).size == 0:
        return _empty_summary(n_boot, alpha, method, tilt, only, where)
    c, y = check_pair(conf, correct, where=where)
    nb = check_n_boot(n_boot, where, allow_zero=True)
    a = check_alpha(alpha, where)
    m = _check_method(method, where)
    metrics = _summary_metrics(_chosen(only, where), n_bins=n_bins)

    out: dict[str, Any] = {"n": c.size, "n_boot": nb, "alpha": a, "method": m}
    for name, fn in metrics.items():
        value = fn(c, y)
        out[name] = float(value)
        for attr in METRICS.meta(name).get("reports", ()):
            out[f"{name}_{attr}"] = float(getattr(value, attr))
    given = dict(draws or {})
    for name, values in given.items():
        if name not in metrics or np.shape(values) != (nb,):
            raise SemcalError(f"summarize: draws of {name!r} do not match this summary "
                              f"(expected {nb} values of a metric it reports)")
    drawn = _draw_missing(metrics, given, c, y, nb, seed)
    for name in metrics:
        if nb:
            values = (np.asarray(given[name], dtype=np.float64) if name in given
                      else np.concatenate(drawn[name]))
            lo, hi = _interval(values, a, m, out[name], metric_range(name))
        else:
            lo = hi = float("nan")
        out[f"{name}_lo"], out[f"{name}_hi"] = lo, hi
    if tilt:
        out.update(tilt_summary(c, y, seed=0 if seed is None else int(seed)))
    return out


def _empty_summary(
    n_boot: Any, alpha: Any, method: Any, tilt: bool, only: Any, where: str
) -> dict[str, Any]:
    """The summary of no pairs: ``n = 0`` and NaN for every value and bound asked for."""
    nan = float("nan")
    empty: dict[str, Any] = {"n": 0, "n_boot": n_boot, "alpha": alpha, "method": method}
    for name in _chosen(only, where):
        empty[name] = empty[f"{name}_lo"] = empty[f"{name}_hi"] = nan
        for attr in METRICS.meta(name).get("reports", ()):
            empty[f"{name}_{attr}"] = nan
    if tilt:
        empty.update(tilt_gain=nan, tilt_gain_se=nan, tilt_brier_gain=nan)
    return empty


def _draw_missing(
    metrics: dict[str, MetricFn], given: dict[str, Any], c: np.ndarray, y: np.ndarray, nb: int,
    seed: int | None,
) -> dict[str, list[np.ndarray]]:
    """Resample the metrics that ``given`` has no draws for, all on the same resamples."""
    todo = {name: fn for name, fn in metrics.items() if name not in given}
    drawn: dict[str, list[np.ndarray]] = {name: [] for name in todo}
    if nb and todo:
        for idx in resample_indices(c.size, nb, seed):
            for name, fn in todo.items():
                drawn[name].append(_evaluate(fn, c, y, idx))
    return drawn


def _chosen(only: Any, where: str) -> tuple[str, ...]:
    """The metric names ``only`` asks for (every registered one for None), checked."""
    if only is None:
        return METRICS.names()
    names = (only,) if isinstance(only, str) else tuple(only)
    for name in names:
        _resolve(name, where)
    return names


def _summary_metrics(names: tuple[str, ...], **options: Any) -> dict[str, MetricFn]:
    """The metrics ``names`` with the :func:`summarize` options each takes (its ``options``
    metadata) bound as keywords."""
    out: dict[str, MetricFn] = {}
    for name in names:
        fn = METRICS[name]
        kw = {k: options[k] for k in METRICS.meta(name).get("options", ()) if k in options}
        out[name] = functools.partial(fn, **kw) if kw else fn
    return out


def reliability_band(
    conf: Any, correct: Any, sigma: float, *, n_boot: int = 200, alpha: float = 0.05,
    seed: int | None = 0, mesh_pts: int = 200,
) -> tuple[np.ndarray, np.ndarray]:
    """The pointwise ``1 - alpha`` percentile bootstrap band of the smoothed reliability curve
    (:func:`semcal.metrics.smooth_reliability` at the fixed bandwidth ``sigma``, usually the
    summary's ``smece_sigma``) over ``n_boot`` paired resamples: ``(lower, upper)``, each of
    shape (mesh_pts,), NaN where no resample has data nearby. The resamples are those of
    :func:`summarize` with the same ``n_boot`` and ``seed``."""
    where = "reliability_band"
    c, y = check_pair(conf, correct, where=where)
    nb = check_n_boot(n_boot, where)
    a = check_alpha(alpha, where)
    s = _check_sigma(sigma, where)
    if isinstance(mesh_pts, bool) or not isinstance(mesh_pts, (int, np.integer)) or mesh_pts < 2:
        raise InputError(f"mesh_pts must be an integer >= 2, got {mesh_pts!r}", where=where)
    draws = np.concatenate([_smooth_curve_batch(c, y, idx, s, int(mesh_pts))
                            for idx in resample_indices(c.size, nb, seed)])
    lower = np.full(int(mesh_pts), np.nan)
    upper = np.full(int(mesh_pts), np.nan)
    ok = ~np.isnan(draws).all(axis=0)
    if ok.any():
        lower[ok] = np.nanquantile(draws[:, ok], a / 2, axis=0)
        upper[ok] = np.nanquantile(draws[:, ok], 1 - a / 2, axis=0)
    return lower, upper


#: the tilt diagnostic needs at least this many questions, with both outcomes among them
TILT_MIN_N = 10


def tilt_summary(conf: Any, correct: Any, seed: int = 0) -> dict[str, float]:
    """``tilt_gain``, ``tilt_gain_se``, ``tilt_brier_gain`` of the pairs (NaN when undefined:
    fewer than :data:`TILT_MIN_N` questions, one outcome only, or a fit that fails)."""

    nan = float("nan")
    out = {"tilt_gain": nan, "tilt_gain_se": nan, "tilt_brier_gain": nan}
    c, y = check_pair(conf, correct, where="tilt_summary")
    if c.size < TILT_MIN_N or y.all() or not y.any():
        return out
    try:
        r = recalibration_gain(c, y.astype(bool), seed=seed)
    except (SemcalError, ValueError, FloatingPointError):
        return out
    return {"tilt_gain": float(r.log_loss_gain), "tilt_gain_se": float(r.log_loss_gain_se),
            "tilt_brier_gain": float(r.brier_gain)}
