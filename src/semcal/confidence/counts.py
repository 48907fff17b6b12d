"""Estimators from the class counts of the samples alone: the plurality share (plain and
smoothed), the number of classes, the count-based semantic entropy."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from semcal.confidence.inputs import _check_labels, _resolve_prediction
from semcal.errors import InputError
from semcal.grade import answer_confidence


def semantic_confidence(labels: Sequence[str], prediction: str | None = None) -> float:
    """The paper's semantic confidence: the share of samples in the predicted class, count / M
    (:func:`semcal.grade.answer_confidence`, 0 when the prediction is no answer).

    ``prediction`` defaults to the plurality class. Example: labels ``[a, a, b]`` -> 2/3.
    """
    labs = _check_labels(labels)
    pred = _resolve_prediction(labs, prediction)
    return answer_confidence(pred, labs.count(pred), len(labs))


def semantic_confidence_smoothed(
    labels: Sequence[str], prediction: str | None = None, alpha: float = 1.0
) -> float:
    """Add-``alpha`` (Laplace, alpha=1) smoothed semantic confidence.

    ``(count + alpha) / (M + alpha * (K + 1))`` where K is the number of distinct classes seen
    among the M samples and the extra 1 is a bucket for "some class not sampled". This is the
    posterior mean of the predicted class's probability under a symmetric Dirichlet(alpha)
    prior over the seen classes plus one unseen class. It never reaches 0 or 1 (unanimous
    samples give (M+alpha)/(M+2*alpha), e.g. 11/12 for M=10), which keeps log-loss finite, and it
    shrinks the small-M plurality share, which is biased upwards because it is a maximum.
    """
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise InputError(f"alpha must be a finite number > 0, got {alpha!r}")
    labs = _check_labels(labels)
    pred = _resolve_prediction(labs, prediction)
    k = len(set(labs))
    return (labs.count(pred) + alpha) / (len(labs) + alpha * (k + 1))


def num_classes(labels: Sequence[str]) -> int:
    """Number of distinct semantic classes among the samples (NO_ANSWER counts as one class)."""
    return len(set(_check_labels(labels)))


def semantic_entropy(labels: Sequence[str]) -> float:
    """Discrete semantic entropy in nats: -sum_c (n_c/M) log(n_c/M) over the sampled classes.

    This is the count-based estimator ("discrete semantic entropy", Farquhar et al. 2024), which
    needs no log-probabilities. Example: ``[a, a, b, b]`` -> ln 2. It is an uncertainty *score*:
    larger means less confident, and it is not a probability.
    """
    labs = _check_labels(labels)
    m = len(labs)
    h = -math.fsum((n / m) * math.log(n / m) for n in Counter(labs).values())
    return max(h, 0.0)  # clamp -0.0 and rounding below zero
