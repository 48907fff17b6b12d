"""Input checks shared by every metric: turn user arrays into clean float64 vectors or raise.

Every public metric calls :func:`check_pair` first, so a user mistake (NaN, a label of 2, arrays
of different lengths...) surfaces as one :class:`semcal.errors.InputError` naming the argument
and the first offending position, never as a numpy traceback deep inside a kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semcal.errors import InputError


def _as_vector(values: Any, name: str, where: str) -> np.ndarray:
    """Convert ``values`` to a 1-D float64 array, or raise InputError."""
    if values is None:
        raise InputError(f"{name} is None; expected a 1-D array of numbers", where=where)
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged lists and the like
        raise InputError(f"{name} cannot be read as an array: {exc}", where=where) from exc
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise InputError(
            f"{name} must hold numbers (got dtype {arr.dtype}); convert it with np.asarray(..., float)",
            where=where,
        )
    if arr.ndim != 1:
        raise InputError(
            f"{name} must be 1-D (one value per question), got shape {arr.shape}", where=where
        )
    if arr.size == 0:
        raise InputError(f"{name} is empty; a metric needs at least one question", where=where)
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{name}[{i}] = {float(arr[i])!r} is not finite ({int(bad.sum())} non-finite values in all)",
            where=where,
        )
    return arr


def check_pair(conf: Any, correct: Any, where: str = "metrics", *,
               scores: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (confidence, correctness) pair.

    Parameters
    ----------
    conf:
        Array-like of shape (n,), confidences in [0, 1].
    correct:
        Array-like of shape (n,), 1/True where the prediction was right, 0/False where not.
    where:
        Name of the calling function, used in error messages.
    scores:
        True when ``conf`` may be any real-valued score (AUROC of an entropy or a count):
        only the [0, 1] range check is skipped.

    Returns
    -------
    (conf, correct) as float64 arrays of shape (n,). The inputs are not modified.

    Raises
    ------
    InputError
        On None, non-numeric data, a shape other than (n,), an empty array, NaN or inf,
        confidences outside [0, 1], labels other than 0/1, or a length mismatch.
    """
    c = _as_vector(conf, "conf", where)
    y = _as_vector(correct, "correct", where)
    if c.shape != y.shape:
        raise InputError(
            f"conf and correct have different lengths ({c.size} vs {y.size})", where=where
        )
    out = np.zeros(c.shape, dtype=bool) if scores else (c < 0.0) | (c > 1.0)
    if out.any():
        i = int(np.flatnonzero(out)[0])
        raise InputError(
            f"conf[{i}] = {float(c[i])!r} is outside [0, 1] ({int(out.sum())} such values)", where=where
        )
    not_binary = (y != 0.0) & (y != 1.0)
    if not_binary.any():
        i = int(np.flatnonzero(not_binary)[0])
        raise InputError(
            f"correct[{i}] = {float(y[i])!r} is not 0 or 1 ({int(not_binary.sum())} such values)",
            where=where,
        )
    return c, y


def check_n_boot(n_boot: Any, where: str, allow_zero: bool = False) -> int:
    """Validate a bootstrap resample count (a non-negative/positive int)."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)):
        raise InputError(f"n_boot must be an integer, got {n_boot!r}", where=where)
    low = 0 if allow_zero else 1
    if n_boot < low:
        raise InputError(f"n_boot must be >= {low}, got {n_boot}", where=where)
    return int(n_boot)


def check_alpha(alpha: Any, where: str) -> float:
    """Validate the miscoverage level of a confidence interval (0 < alpha < 1)."""
    try:
        a = float(alpha)
    except (TypeError, ValueError) as exc:
        raise InputError(f"alpha must be a number in (0, 1), got {alpha!r}", where=where) from exc
    if not (0.0 < a < 1.0):
        raise InputError(f"alpha must be in (0, 1), got {alpha!r}", where=where)
    return a
