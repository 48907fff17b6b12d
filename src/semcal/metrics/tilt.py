"""Local-loss-optimality diagnostic: can an exponential tilt of the class distribution lower the loss?

A perturbation of a class distribution f is an exponential tilt
``(f * w)[z] = softmax(w[z] + log f[z])`` with ``w`` a function of the class probabilities.
A model whose semantic confidence is calibrated sits at a local optimum of its loss along
such tilts: no small tilt lowers the expected loss. This module fits two small tilt
families on held-out folds and reports how much they lower the loss (the *recalibration gain*).

Families
--------
``temperature`` (1 parameter): ``f_T[z] ∝ f[z]^(1/T)``, i.e. ``w = (1/T - 1) log f``. It needs
the whole class distribution of every question (its count vector). T > 1 flattens the
distribution (the model was overconfident), T < 1 sharpens it (underconfident).

``platt`` (2 parameters): a tilt of the top class only, ``w[z] = s(c) 1[z = top]`` with
``s(c) = (a - 1) logit(c) + b``; it maps the top-class confidence c to
``logit(c') = a logit(c) + b`` and needs only (confidence, correct) pairs.
a < 1 shrinks confidences towards 1/2 (overconfident), a > 1 stretches them; b shifts them.

Objective
---------
By default both are fitted by minimising the **binary log-loss of correctness** of the top-class
confidence, ``-[y log c' + (1-y) log(1-c')]`` with y = 1 when the predicted class is correct.
This is the loss that matches the paper's notion (calibration of the top-class confidence).
For a tilt of the top class alone it is equivalent to the multiclass log-loss of the gold class:
the two differ by a term that does not depend on the tilt, so they have the same minimiser.
For the temperature family the multiclass log-loss ``-log f_T[gold]`` can be asked for instead
(``objective="multiclass"``); it tests the whole distribution, a stronger property than
confidence calibration. Questions whose gold class was never sampled have ``f[gold] = 0`` for
every T; they contribute the constant ``-log eps`` and do not influence T.

Evaluation
----------
K-fold cross-validation with a seeded shuffle: parameters are fitted on K-1 folds and the
top-class log-loss and Brier score are computed on the held-out fold. "Before" is the identity
map (T = 1, (a, b) = (1, 0)), which needs no fitting. The gain is before - after; a positive
gain larger than its standard error means a tilt helps, i.e. the model is not locally
loss-optimal (miscalibrated). The reported parameters are fitted on all the data.

Confidences of exactly 0 or 1 are clipped to [eps, 1 - eps] (default eps = 1e-3) before taking
logs and logits; eps must stay below 1/M so that clipping never reorders plurality shares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from semcal.errors import InputError
from semcal.metrics._validate import check_pair

__all__ = [
    "DEFAULT_EPS",
    "TiltDiagnostic",
    "TiltResult",
    "counts_from_labels",
    "platt_tilt",
    "recalibration_gain",
    "temperature_tilt",
    "tempered_confidence",
    "tilt_diagnostic",
]

DEFAULT_EPS = 1e-3
_LOG_T_BOUNDS = (math.log(0.02), math.log(50.0))
_PLATT_RIDGE = 1e-4  # weak pull of (a, b) towards the identity (1, 0); keeps separable data finite


@dataclass(frozen=True)
class TiltResult:
    """Held-out effect of one tilt family.

    ``params``: the fitted parameters on all data ({"T": ...} or {"a": ..., "b": ...});
    ``fold_params``: the parameters fitted in each CV fold (their spread shows how stable the
    fit is). Losses are means over questions of the top-class confidence against correctness:
    ``log_loss_*`` in nats, ``brier_*`` in [0, 1]. ``*_gain = before - after`` (positive: the
    tilt helps on held-out data); ``*_gain_se`` is the standard error of that mean difference
    (paired over questions).
    """

    family: str
    objective: str
    params: Mapping[str, float]
    n: int
    n_folds: int
    seed: int
    eps: float
    log_loss_before: float
    log_loss_after: float
    log_loss_gain: float
    log_loss_gain_se: float
    brier_before: float
    brier_after: float
    brier_gain: float
    brier_gain_se: float
    fold_params: tuple[Mapping[str, float], ...] = field(default=())

    @property
    def gain(self) -> float:
        """The held-out log-loss gain (same as ``log_loss_gain``)."""
        return self.log_loss_gain

    def gain_ci(self, z: float = 1.96) -> tuple[float, float]:
        """Normal-approximation interval for the log-loss gain (z = 1.96: about 95%)."""
        return (self.log_loss_gain - z * self.log_loss_gain_se,
                self.log_loss_gain + z * self.log_loss_gain_se)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view (for JSON, tables)."""
        d: dict[str, Any] = {
            "family": self.family,
            "objective": self.objective,
            "n": self.n,
            "n_folds": self.n_folds,
            "seed": self.seed,
            "eps": self.eps,
        }
        d.update({f"param_{k}": v for k, v in self.params.items()})
        for k in ("log_loss", "brier"):
            for s in ("before", "after", "gain", "gain_se"):
                d[f"{k}_{s}"] = getattr(self, f"{k}_{s}")
        return d


@dataclass(frozen=True)
class TiltDiagnostic:
    """Both families on the same questions; ``temperature`` is None when only
    (confidence, correct) pairs were given."""

    platt: TiltResult
    temperature: TiltResult | None = None


# ---------------------------------------------------------------------------------------------
# input handling


def _check_eps(eps: float) -> float:
    if not (isinstance(eps, (int, float)) and 0 < eps < 0.5):
        raise InputError(f"eps must be in (0, 0.5), got {eps!r}")
    return float(eps)


def _check_cv(n: int, n_folds: int) -> None:
    if isinstance(n_folds, bool) or not isinstance(n_folds, int) or n_folds < 2:
        raise InputError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if n < n_folds:
        raise InputError(f"{n} questions are too few for {n_folds}-fold cross-validation")


class _Counts:
    """Count vectors as a padded (n, width) matrix of log class probabilities log(n_z / M);
    -inf marks zero counts and padding."""

    def __init__(self, counts: Sequence[Sequence[float]], gold_index: Sequence[int],
                 pred_index: Sequence[int] | None):
        n = len(counts)
        if n != len(gold_index):
            raise InputError(f"{n} count vectors but {len(gold_index)} gold indices")
        if pred_index is not None and len(pred_index) != n:
            raise InputError(f"{n} count vectors but {len(pred_index)} predicted indices")
        try:
            width = max((len(v) for v in counts), default=0)
        except TypeError:
            raise InputError("counts must be a sequence of count vectors (one per question)") from None
        logf = np.full((n, max(width, 1)), -np.inf)
        top = np.zeros(n, dtype=int)
        gold = np.full(n, -1, dtype=int)
        for i, v in enumerate(counts):
            where = f"question {i}"
            try:
                a = np.asarray(v, dtype=float).reshape(-1)
                g = int(gold_index[i])
                p = -1 if pred_index is None else int(pred_index[i])
            except (TypeError, ValueError) as exc:
                raise InputError(f"counts and indices must be numbers: {exc}", where=where) from exc
            if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0) or a.sum() <= 0:
                raise InputError("a count vector must be non-empty, finite, >= 0, sum > 0",
                                 where=where)
            if pred_index is None:
                p = int(np.argmax(a))
            with np.errstate(divide="ignore"):
                logf[i, : a.size] = np.log(a / a.sum())
            if not (0 <= p < a.size) or a[p] <= 0:
                raise InputError(f"predicted index {p} is not a sampled class", where=where)
            top[i] = p
            if not (-1 <= g < a.size):
                raise InputError(f"gold index {g} out of range [-1, {a.size})", where=where)
            gold[i] = g
        self.logf = logf
        self.top = top
        self.gold = gold
        self.n = n
        rows = np.arange(n)
        self.correct = (gold == top).astype(float)
        self.log_top = logf[rows, top]

    def subset(self, idx: np.ndarray) -> _Counts:
        new = object.__new__(_Counts)
        new.logf, new.top, new.gold = self.logf[idx], self.top[idx], self.gold[idx]
        new.n = len(idx)
        new.correct, new.log_top = self.correct[idx], self.log_top[idx]
        return new

    def tempered_log(self, t: float) -> np.ndarray:
        """log f_T, shape (n, width)."""
        z = self.logf / t
        m = np.max(z, axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            lse = m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True))
        return z - lse

    def top_conf(self, t: float) -> np.ndarray:
        lt = self.tempered_log(t)
        return np.exp(lt[np.arange(self.n), self.top])

    def multiclass_nll(self, t: float, eps: float) -> np.ndarray:
        lt = self.tempered_log(t)
        out = np.full(self.n, -math.log(eps))
        has = self.gold >= 0
        rows = np.arange(self.n)[has]
        out[has] = -np.maximum(lt[rows, self.gold[has]], math.log(eps))
        return out


# ---------------------------------------------------------------------------------------------
# losses


def _clip(c: np.ndarray, eps: float) -> np.ndarray:
    return np.clip(c, eps, 1.0 - eps)


def _binary_nll(c: np.ndarray, y: np.ndarray, eps: float) -> np.ndarray:
    c = _clip(c, eps)
    return -(y * np.log(c) + (1 - y) * np.log1p(-c))


def _brier(c: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (c - y) ** 2


def _logit(c: np.ndarray, eps: float) -> np.ndarray:
    c = _clip(c, eps)
    return np.log(c) - np.log1p(-c)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


# ---------------------------------------------------------------------------------------------
# fitting


def _fit_temperature(data: _Counts, objective: str, eps: float) -> float:
    if objective == "binary":
        def loss(log_t: float) -> float:
            return float(np.mean(_binary_nll(data.top_conf(math.exp(log_t)), data.correct, eps)))
    else:
        def loss(log_t: float) -> float:
            return float(np.mean(data.multiclass_nll(math.exp(log_t), eps)))
    res = minimize_scalar(loss, bounds=_LOG_T_BOUNDS, method="bounded",
                          options={"xatol": 1e-6})
    # a flat objective (every question unanimous) leaves T undetermined: prefer the identity
    if loss(0.0) <= float(res.fun) + 1e-12:
        return 1.0
    return float(math.exp(res.x))


def _fit_platt(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Logistic regression of y on x = logit(c), with a weak ridge towards (a, b) = (1, 0)."""
    n = len(x)
    lam = _PLATT_RIDGE

    def fg(p: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = p
        z = a * x + b
        # log(1 + e^z) - y z, stable
        nll = np.logaddexp(0.0, z) - y * z
        r = _sigmoid(z) - y
        f = float(np.sum(nll)) / n + lam * ((a - 1.0) ** 2 + b**2)
        g = np.array([np.dot(r, x) / n + 2 * lam * (a - 1.0), np.sum(r) / n + 2 * lam * b])
        return f, g

    res = minimize(fg, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(res.x[0]), float(res.x[1])


def _folds(n: int, n_folds: int, seed: int) -> list[np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    return [np.sort(f) for f in np.array_split(perm, n_folds)]


def _result(family: str, objective: str, params: dict[str, float],
            fold_params: list[dict[str, float]], n_folds: int, seed: int, eps: float,
            c_before: np.ndarray, c_after: np.ndarray, y: np.ndarray) -> TiltResult:
    n = len(y)
    ll_b, ll_a = _binary_nll(c_before, y, eps), _binary_nll(c_after, y, eps)
    br_b, br_a = _brier(c_before, y), _brier(c_after, y)

    def se(d: np.ndarray) -> float:
        return float(np.std(d, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    return TiltResult(
        family=family,
        objective=objective,
        params=MappingProxyType(dict(params)),
        n=n,
        n_folds=n_folds,
        seed=seed,
        eps=eps,
        log_loss_before=float(ll_b.mean()),
        log_loss_after=float(ll_a.mean()),
        log_loss_gain=float((ll_b - ll_a).mean()),
        log_loss_gain_se=se(ll_b - ll_a),
        brier_before=float(br_b.mean()),
        brier_after=float(br_a.mean()),
        brier_gain=float((br_b - br_a).mean()),
        brier_gain_se=se(br_b - br_a),
        fold_params=tuple(MappingProxyType(dict(p)) for p in fold_params),
    )


def tempered_confidence(counts: Sequence[float], temperature: float,
                        pred_index: int | None = None) -> float:
    """Top-class confidence of one count vector after the temperature tilt f^(1/T)."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature > 0):
        raise InputError(f"temperature must be a finite number > 0, got {temperature!r}")
    d = _Counts([counts], [-1], None if pred_index is None else [pred_index])
    return float(d.top_conf(float(temperature))[0])


def temperature_tilt(
    counts: Sequence[Sequence[float]],
    gold_index: Sequence[int],
    *,
    pred_index: Sequence[int] | None = None,
    objective: str = "binary",
    n_folds: int = 5,
    seed: int = 0,
    eps: float = DEFAULT_EPS,
) -> TiltResult:
    """Temperature tilt f_T ∝ f^(1/T) of each question's class distribution, cross-validated.

    ``counts[i]``: samples per class for question i (any length; zeros allowed);
    ``gold_index[i]``: index of the correct class in ``counts[i]``, or -1 if it was never
    sampled; ``pred_index[i]``: the predicted class (default: argmax, first on ties; put the
    plurality class first to follow another tie-break). ``objective``: "binary" (log-loss of
    correctness of the top-class confidence, the default) or "multiclass" (log-loss of the
    gold class). T ≈ 1 means calibrated; T > 1 overconfident; T < 1 underconfident.
    """
    if objective not in ("binary", "multiclass"):
        raise InputError(f"objective must be 'binary' or 'multiclass', got {objective!r}")
    eps = _check_eps(eps)
    data = _Counts(counts, gold_index, pred_index)
    _check_cv(data.n, n_folds)
    c_after = np.empty(data.n)
    fold_params = []
    for idx in _folds(data.n, n_folds, seed):
        train = np.setdiff1d(np.arange(data.n), idx, assume_unique=True)
        t = _fit_temperature(data.subset(train), objective, eps)
        fold_params.append({"T": t})
        c_after[idx] = data.subset(idx).top_conf(t)
    t_all = _fit_temperature(data, objective, eps)
    return _result("temperature", objective, {"T": t_all}, fold_params, n_folds, seed, eps,
                   np.exp(data.log_top), c_after, data.correct)


def platt_tilt(
    conf: Sequence[float],
    correct: Sequence[bool],
    *,
    n_folds: int = 5,
    seed: int = 0,
    eps: float = DEFAULT_EPS,
) -> TiltResult:
    """Platt-style tilt of the top-class confidence, logit(c') = a·logit(c) + b, cross-validated.

    ``conf``: shape (n,), confidences in [0, 1]; ``correct``: shape (n,), booleans or 0/1.
    Fitted by minimising the log-loss of correctness (a weak ridge of 1e-4 towards (1, 0)
    keeps perfectly separable data finite). (a, b) ≈ (1, 0) means calibrated.
    """
    eps = _check_eps(eps)
    c, y = check_pair(conf, correct, where="platt_tilt")
    _check_cv(len(c), n_folds)
    x = _logit(c, eps)
    c_after = np.empty(len(c))
    fold_params = []
    for idx in _folds(len(c), n_folds, seed):
        train = np.setdiff1d(np.arange(len(c)), idx, assume_unique=True)
        a, b = _fit_platt(x[train], y[train])
        fold_params.append({"a": a, "b": b})
        c_after[idx] = _sigmoid(a * x[idx] + b)
    a, b = _fit_platt(x, y)
    return _result("platt", "binary", {"a": a, "b": b}, fold_params, n_folds, seed, eps,
                   c, c_after, y)


def recalibration_gain(
    conf: Sequence[float],
    correct: Sequence[bool],
    *,
    n_folds: int = 5,
    seed: int = 0,
    eps: float = DEFAULT_EPS,
) -> TiltResult:
    """Held-out recalibration gain of the Platt tilt on (confidence, correct) pairs.

    Shorthand for :func:`platt_tilt`; ``result.gain`` is the log-loss gain in nats
    (about 0 for a locally loss-optimal, i.e. calibrated, model).
    """
    return platt_tilt(conf, correct, n_folds=n_folds, seed=seed, eps=eps)


def tilt_diagnostic(
    counts: Sequence[Sequence[float]] | None = None,
    gold_index: Sequence[int] | None = None,
    *,
    conf: Sequence[float] | None = None,
    correct: Sequence[bool] | None = None,
    pred_index: Sequence[int] | None = None,
    objective: str = "binary",
    n_folds: int = 5,
    seed: int = 0,
    eps: float = DEFAULT_EPS,
) -> TiltDiagnostic:
    """Both tilt families on the same questions.

    Give either (``counts``, ``gold_index``), from which the top-class confidence and
    correctness are derived and both families are fitted, or (``conf``, ``correct``), for which
    only the Platt family can be fitted.
    """
    if counts is not None:
        if gold_index is None:
            raise InputError("gold_index is required with counts")
        if conf is not None or correct is not None:
            raise InputError("give either counts/gold_index or conf/correct, not both")
        temp = temperature_tilt(counts, gold_index, pred_index=pred_index, objective=objective,
                                n_folds=n_folds, seed=seed, eps=eps)
        data = _Counts(counts, gold_index, pred_index)
        platt = platt_tilt(np.exp(data.log_top), data.correct, n_folds=n_folds, seed=seed,
                           eps=eps)
        return TiltDiagnostic(platt=platt, temperature=temp)
    if conf is None or correct is None:
        raise InputError("give counts and gold_index, or conf and correct")
    return TiltDiagnostic(platt=platt_tilt(conf, correct, n_folds=n_folds, seed=seed, eps=eps))


def counts_from_labels(
    labels: Sequence[str], gold: frozenset[str] | set[str], prediction: str
) -> tuple[list[int], int]:
    """Turn one question's sample labels into (count vector, gold index) for :func:`temperature_tilt`.

    The predicted class comes first, so the default argmax-first tie-break picks it; the other
    classes follow in order of first appearance. The gold index is 0 when the prediction is a
    gold class, otherwise the most-sampled gold class, or -1 if no gold class was sampled.
    """
    labs = [str(x) for x in labels]
    if not labs:
        raise InputError("labels is empty")
    if prediction not in labs:
        raise InputError(f"prediction {prediction!r} is not among the labels")
    order = [prediction] + [lab for lab in dict.fromkeys(labs) if lab != prediction]
    counts = [labs.count(lab) for lab in order]
    if prediction in gold:
        return counts, 0
    gold_pos = [i for i, lab in enumerate(order) if lab in gold]
    if not gold_pos:
        return counts, -1
    return counts, max(gold_pos, key=lambda i: (counts[i], -i))
