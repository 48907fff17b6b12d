"""Binned expected calibration error with equal-width or equal-mass bins.

ECE = sum over bins b of (n_b / n) * |mean conf in b - accuracy in b|
    = sum over bins b of |sum_{i in b} (conf_i - correct_i)| / n,

the second form being how it is computed (no division by small bin counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from semcal.errors import InputError
from semcal.metrics._validate import check_pair

__all__ = ["BinStats", "STRATEGIES", "bin_stats", "ece"]

#: "width": n_bins bins of width 1/n_bins; "mass": bins holding about n / n_bins points each.
STRATEGIES = ("width", "mass")


@dataclass(frozen=True)
class BinStats:
    """Per-bin summary of a binned reliability diagram.

    ``edges``: (B + 1,) bin edges; ``count``: (B,) points per bin; ``mean_conf``, ``accuracy``:
    (B,) per-bin means (NaN for empty bins); ``ece``: the binned ECE.
    """

    edges: np.ndarray
    count: np.ndarray
    mean_conf: np.ndarray
    accuracy: np.ndarray
    ece: float


def _check_bins(n_bins: Any, strategy: Any, where: str) -> tuple[int, str]:
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise InputError(f"n_bins must be a positive integer, got {n_bins!r}", where=where)
    if strategy not in STRATEGIES:
        raise InputError(
            f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}", where=where
        )
    return int(n_bins), str(strategy)


def _edges(conf: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """Bin edges (B + 1,). Equal-mass edges are quantiles, with duplicates merged."""
    if strategy == "width":
        return np.linspace(0.0, 1.0, n_bins + 1)
    edges = np.unique(np.quantile(conf, np.linspace(0.0, 1.0, n_bins + 1)))
    if edges.size == 1:  # every confidence identical: one bin
        edges = np.array([edges[0], edges[0]])
    edges[0], edges[-1] = 0.0, 1.0
    return edges


def _assign(conf: np.ndarray, edges: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """Bin number of each confidence (same shape as ``conf``)."""
    if strategy == "width":
        # [0, 1/B), [1/B, 2/B), ..., [(B-1)/B, 1]
        return np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    # Equal mass: a value equal to an inner edge goes to the bin above it; tied confidences
    # always share a bin, so the result never depends on the order of the input.
    return np.searchsorted(edges[1:-1], conf, side="right")


def ece(conf: Any, correct: Any, n_bins: int = 15, strategy: str = "width") -> float:
    """Binned ECE of ``conf`` (n,) in [0, 1] against ``correct`` (n,) in {0, 1}.

    ``strategy="width"``: ``n_bins`` equal-width bins ``[k/B, (k+1)/B)`` (the last one closed).
    ``strategy="mass"``: edges at the quantiles of ``conf``; equal confidences are never split
    across bins (so with many ties, e.g. semantic confidences k/M, bins merge and fewer than
    ``n_bins`` may remain). With a constant confidence ``c`` and accuracy ``a`` both give
    ``|c - a|``. Returns a float in [0, 1].
    """
    c, y = check_pair(conf, correct, where="ece")
    nb, strat = _check_bins(n_bins, strategy, "ece")
    edges = _edges(c, nb, strat)
    idx = _assign(c, edges, nb, strat)
    gaps = np.bincount(idx, weights=c - y, minlength=len(edges) - 1)
    return float(np.abs(gaps).sum() / c.size)


def bin_stats(conf: Any, correct: Any, n_bins: int = 15, strategy: str = "width") -> BinStats:
    """Per-bin counts, mean confidence and accuracy (for binned reliability diagrams)."""
    c, y = check_pair(conf, correct, where="bin_stats")
    nb, strat = _check_bins(n_bins, strategy, "bin_stats")
    edges = _edges(c, nb, strat)
    nbin = len(edges) - 1
    idx = _assign(c, edges, nb, strat)
    count = np.bincount(idx, minlength=nbin)
    sum_c = np.bincount(idx, weights=c, minlength=nbin)
    sum_y = np.bincount(idx, weights=y, minlength=nbin)
    gaps = np.bincount(idx, weights=c - y, minlength=nbin)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_c = np.where(count > 0, sum_c / np.maximum(count, 1), np.nan)
        acc = np.where(count > 0, sum_y / np.maximum(count, 1), np.nan)
    return BinStats(edges, count, mean_c, acc, float(np.abs(gaps).sum() / c.size))


def _ece_batch(
    conf: np.ndarray, correct: np.ndarray, index: np.ndarray, n_bins: int = 15,
    strategy: str = "width",
) -> np.ndarray:
    """Binned ECE of each resample ``index[b]`` (index: (k, n)); returns (k,)."""
    nb, strat = _check_bins(n_bins, strategy, "ece")
    k, n = index.shape
    if strat == "width":
        idx = _assign(conf, np.empty(0), nb, strat)[index]  # (k, n)
        flat = (idx + (np.arange(k, dtype=np.int64) * nb)[:, None]).ravel()
        gaps = np.bincount(flat, weights=(conf - correct)[index].ravel(), minlength=k * nb)
        return np.abs(gaps.reshape(k, nb)).sum(axis=1) / n
    out = np.empty(k)
    resid = conf - correct
    for b in range(k):  # quantile edges differ per resample
        cb = conf[index[b]]
        edges = _edges(cb, nb, strat)
        gaps = np.bincount(_assign(cb, edges, nb, strat), weights=resid[index[b]],
                           minlength=len(edges) - 1)
        out[b] = np.abs(gaps).sum() / n
    return out
