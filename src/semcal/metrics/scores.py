"""Proper scores and summary statistics of (confidence, correct) pairs.

Every function takes ``conf`` (n,) in [0, 1] and ``correct`` (n,) in {0, 1} (bools are fine) and
returns a Python float. Inputs are validated; see :func:`semcal.metrics._validate.check_pair`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semcal.errors import InputError
from semcal.metrics._validate import check_pair


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x`` with ties given their average rank (as
    ``scipy.stats.rankdata(x, method="average")``, without importing scipy.stats)."""
    x = np.asarray(x, dtype=float).ravel()
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    bounds = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1], True])  # tie groups [b_k, b_k+1)
    mean_rank = (bounds[:-1] + bounds[1:] + 1) / 2.0  # mean of b_k+1 ... b_k+1
    out = np.empty(x.size)
    out[order] = np.repeat(mean_rank, np.diff(bounds))
    return out

__all__ = [
    "LOG_LOSS_EPS",
    "accuracy",
    "auroc",
    "brier",
    "log_loss",
    "mean_confidence",
    "overconfidence",
]

#: Default clip of confidences in :func:`log_loss`: a wrong answer given confidence 1.0 (common
#: for semantic confidence, where all samples agree) costs -log(1e-6) = 13.8 nats, not infinity.
LOG_LOSS_EPS = 1e-6


def accuracy(conf: Any, correct: Any) -> float:
    """Fraction of correct predictions, in [0, 1]. (``conf`` is validated but not used.)"""
    _, y = check_pair(conf, correct, where="accuracy")
    return float(y.mean())


def mean_confidence(conf: Any, correct: Any) -> float:
    """Mean confidence, in [0, 1]."""
    c, _ = check_pair(conf, correct, where="mean_confidence")
    return float(c.mean())


def overconfidence(conf: Any, correct: Any) -> float:
    """Signed miscalibration ``mean(conf) - accuracy`` in [-1, 1]: > 0 over-, < 0 underconfident."""
    c, y = check_pair(conf, correct, where="overconfidence")
    return float((c - y).mean())


def brier(conf: Any, correct: Any) -> float:
    """Brier score ``mean((conf - correct)**2)``, in [0, 1]; lower is better."""
    c, y = check_pair(conf, correct, where="brier")
    return float(np.mean((c - y) ** 2))


def _check_eps(eps: Any, where: str) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError) as exc:
        raise InputError(f"eps must be a number in (0, 0.5), got {eps!r}", where=where) from exc
    if not (0.0 < e < 0.5):
        raise InputError(f"eps must be in (0, 0.5), got {eps!r}", where=where)
    return e


def _log_loss_terms(c: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    p = np.clip(c, eps, 1.0 - eps)
    return -np.where(y == 1.0, np.log(p), np.log1p(-p))


def log_loss(conf: Any, correct: Any, eps: float = LOG_LOSS_EPS) -> float:
    """Mean negative log-likelihood (nats) of ``correct`` under ``conf``.

    Confidences are clipped to ``[eps, 1 - eps]`` first (default ``eps = 1e-6``), so the loss is
    finite and each point costs at most ``-log(eps)`` (13.8 nats by default).
    """
    c, y = check_pair(conf, correct, where="log_loss")
    return float(_log_loss_terms(c, y, _check_eps(eps, "log_loss")).mean())


def auroc(conf: Any, correct: Any) -> float:
    """Area under the ROC curve of ``conf`` as a score for separating correct from wrong answers.

    Equals the probability that a random correct answer has higher confidence than a random
    wrong one, ties counting 1/2 (the Mann-Whitney statistic with average ranks). Returns
    ``nan`` (no warning, no error) when all answers are correct or all are wrong: the quantity
    is undefined then. Summaries and bootstrap intervals skip NaN resamples. ``conf`` may be
    any real-valued score (semantic entropy, number of classes), not only a probability.
    """
    c, y = check_pair(conf, correct, where="auroc", scores=True)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(c)
    u = ranks[y == 1.0].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


# ----------------------------------------------------------------------------- bootstrap hooks
# Each takes validated arrays and an index matrix (k, n) of resamples and returns (k,) values.


def _mean_batch(terms: np.ndarray, index: np.ndarray) -> np.ndarray:
    return terms[index].mean(axis=1)


def _accuracy_batch(conf: np.ndarray, correct: np.ndarray, index: np.ndarray) -> np.ndarray:
    return _mean_batch(correct, index)


def _mean_confidence_batch(conf: np.ndarray, correct: np.ndarray, index: np.ndarray) -> np.ndarray:
    return _mean_batch(conf, index)


def _overconfidence_batch(conf: np.ndarray, correct: np.ndarray, index: np.ndarray) -> np.ndarray:
    return _mean_batch(conf - correct, index)


def _brier_batch(conf: np.ndarray, correct: np.ndarray, index: np.ndarray) -> np.ndarray:
    return _mean_batch((conf - correct) ** 2, index)


def _log_loss_batch(
    conf: np.ndarray, correct: np.ndarray, index: np.ndarray, eps: float = LOG_LOSS_EPS
) -> np.ndarray:
    return _mean_batch(_log_loss_terms(conf, correct, _check_eps(eps, "log_loss")), index)


def _auroc_batch(conf: np.ndarray, correct: np.ndarray, index: np.ndarray) -> np.ndarray:
    """AUROC of each resample from per-level counts: O(k * (n + L)), L distinct confidences."""
    k, n = index.shape
    levels, level_of = np.unique(conf, return_inverse=True)
    nl = levels.size
    flat = (level_of[index] + (np.arange(k, dtype=np.int64) * nl)[:, None]).ravel()
    pos = np.bincount(flat, weights=correct[index].ravel(), minlength=k * nl).reshape(k, nl)
    tot = np.bincount(flat, minlength=k * nl).reshape(k, nl)
    neg = tot - pos
    neg_below = np.cumsum(neg, axis=1) - neg  # wrong answers with strictly lower confidence
    n_pos = pos.sum(axis=1)
    n_neg = n - n_pos
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), wins / (n_pos * n_neg), np.nan)
