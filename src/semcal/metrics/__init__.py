"""Calibration metrics: pure functions of numpy arrays, validated at the edge.

Every metric takes ``conf`` (n,) confidences in [0, 1] and ``correct`` (n,) outcomes in {0, 1}
(bools fine) and raises :class:`semcal.errors.InputError` on bad input (NaN, inf, wrong shape,
length mismatch, out-of-range values, empty arrays).

- :func:`smece` -> :class:`SmeceResult` (value, sigma): smooth ECE, equal to ``relplot.smECE``.
- :func:`smece_at`: smECE at a fixed bandwidth; :func:`smooth_reliability`: the smoothed curve.
- :func:`ece` (equal-width or equal-mass bins), :func:`bin_stats`.
- :func:`brier`, :func:`log_loss`, :func:`auroc`, :func:`accuracy`, :func:`mean_confidence`,
  :func:`overconfidence` (mean confidence - accuracy).
- :func:`bootstrap_ci`, :func:`bootstrap_distribution`: percentile bootstrap for any metric.
- :func:`summarize`: all of the above with intervals in one dict.

``semcal.metrics.tilt`` (the local-loss-optimality diagnostic) is a separate submodule.
"""

from __future__ import annotations

from semcal.metrics.binned import STRATEGIES, BinStats, bin_stats, ece
from semcal.metrics.bootstrap import (
    CI_METHODS,
    METRICS,
    bootstrap_ci,
    bootstrap_distribution,
    bootstrap_draws,
    cluster_bootstrap,
    metric_names,
    metric_range,
    percentile_interval,
    reliability_band,
    resample_blocks,
    resample_indices,
    summarize,
    tilt_summary,
)
from semcal.metrics.scores import (
    LOG_LOSS_EPS,
    accuracy,
    auroc,
    brier,
    log_loss,
    mean_confidence,
    overconfidence,
)
from semcal.metrics.smece import (
    SmeceResult,
    SmoothCurve,
    smece,
    smece_at,
    smooth_reliability,
)

__all__ = [
    "CI_METHODS",
    "LOG_LOSS_EPS",
    "METRICS",
    "STRATEGIES",
    "BinStats",
    "SmeceResult",
    "SmoothCurve",
    "accuracy",
    "auroc",
    "bin_stats",
    "bootstrap_ci",
    "bootstrap_distribution",
    "bootstrap_draws",
    "brier",
    "cluster_bootstrap",
    "ece",
    "log_loss",
    "mean_confidence",
    "metric_names",
    "metric_range",
    "overconfidence",
    "percentile_interval",
    "reliability_band",
    "resample_blocks",
    "resample_indices",
    "smece",
    "smece_at",
    "smooth_reliability",
    "summarize",
    "tilt_summary",
]
