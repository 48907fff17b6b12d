"""Estimators from token log-probabilities: the samples weighted by their sequence
probabilities, the most probable sample, and the probabilities of the greedy answer."""

from __future__ import annotations

import math
from collections.abc import Sequence

from semcal.confidence.inputs import (
    _check_completions,
    _check_labels,
    _resolve_prediction,
    _seq_logprob,
)
from semcal.errors import InputError
from semcal.types import Completion


def class_probabilities_weighted(
    labels: Sequence[str],
    completions: Sequence[Completion],
    *,
    length_normalized: bool = True,
    dedupe: bool = False,
) -> dict[str, float] | None:
    """Class distribution weighted by the samples' sequence probabilities.

    p(C) = sum_{i in C} w_i / sum_i w_i with w_i = exp(log p(y_i | x)). With
    ``length_normalized=True`` (the default, as in the reference implementation of Kuhn et al.
    2023 / Farquhar et al. 2024), log p is the *mean* token log-probability; otherwise the total.
    With ``dedupe=True`` identical texts are counted once, so that p(C) becomes the normalised
    probability mass of the distinct sequences seen in C (without it a sequence sampled twice
    is weighted twice). Returns None when any sample lacks log-probabilities.
    """
    labs = _check_labels(labels)
    _check_completions(labs, completions)
    seen: set[str] = set()
    logw: list[tuple[str, float]] = []
    for lab, c in zip(labs, completions):
        if dedupe:
            if c.text in seen:
                continue
            seen.add(c.text)
        lp = _seq_logprob(c, length_normalized)
        if lp is None:
            return None
        logw.append((lab, lp))
    top = max(lp for _, lp in logw)
    if top == -math.inf:
        return None  # every sample has probability zero: no information
    mass: dict[str, float] = {}
    for lab, lp in logw:
        mass[lab] = mass.get(lab, 0.0) + math.exp(lp - top)  # shift for numerical safety
    z = math.fsum(mass.values())
    return {lab: v / z for lab, v in mass.items()}


def logprob_weighted_confidence(
    labels: Sequence[str],
    prediction: str | None,
    completions: Sequence[Completion],
    *,
    length_normalized: bool = True,
    dedupe: bool = False,
) -> float | None:
    """Log-probability-weighted probability of the predicted class (see
    :func:`class_probabilities_weighted`), or None without log-probabilities."""
    labs = _check_labels(labels)
    probs = class_probabilities_weighted(
        labs, completions, length_normalized=length_normalized, dedupe=dedupe
    )
    if probs is None:
        return None
    return probs.get(_resolve_prediction(labs, prediction), 0.0)


def semantic_entropy_weighted(
    labels: Sequence[str],
    completions: Sequence[Completion],
    *,
    length_normalized: bool = True,
    dedupe: bool = False,
) -> float | None:
    """Semantic entropy of Kuhn et al. (2023) / Farquhar et al. (2024), in nats.

    -sum_C p(C) log p(C) with p(C) the log-probability-weighted class distribution of
    :func:`class_probabilities_weighted`. None without log-probabilities. A score, not a
    probability.
    """
    probs = class_probabilities_weighted(
        labels, completions, length_normalized=length_normalized, dedupe=dedupe
    )
    if probs is None:
        return None
    return max(-math.fsum(p * math.log(p) for p in probs.values() if p > 0), 0.0)


def max_sequence_prob(
    labels: Sequence[str],
    prediction: str | None,
    completions: Sequence[Completion],
    *,
    within: str = "prediction",
) -> float | None:
    """Largest sequence probability exp(sum of token log-probs) among the samples.

    ``within="prediction"`` (the default) looks only at the samples in the predicted class, so
    the value is a lower bound on the model's probability of that class (any one sequence of a
    class has at most the class's mass). ``within="all"`` looks at every sample (the
    probability of the single most likely sampled answer, whatever its class). None when the
    relevant samples lack log-probabilities.
    """
    if within not in ("prediction", "all"):
        raise InputError(f"within must be 'prediction' or 'all', got {within!r}")
    labs = _check_labels(labels)
    _check_completions(labs, completions)
    pred = _resolve_prediction(labs, prediction)
    best: float | None = None
    for lab, c in zip(labs, completions):
        if within == "prediction" and lab != pred:
            continue
        lp = _seq_logprob(c, length_normalized=False)
        if lp is None:
            return None
        best = lp if best is None else max(best, lp)
    return None if best is None else math.exp(best)


def greedy_mean_token_prob(greedy: Completion | None) -> float | None:
    """exp(mean token log-prob) of the greedy (temperature-0) completion, or None.

    The geometric mean of the per-token probabilities (length-normalised sequence likelihood,
    Malinin & Gales 2021). It is the confidence of the *greedy* answer, not of the plurality
    class; it is in [0, 1] but is not the probability of any event.
    """
    if greedy is None:
        return None
    lp = _seq_logprob(greedy, length_normalized=True)
    return None if lp is None else math.exp(lp)


def greedy_sequence_prob(greedy: Completion | None) -> float | None:
    """exp(total token log-prob) of the greedy completion: the probability of that exact string.

    None when there is no greedy completion or it has no log-probabilities.
    """
    if greedy is None:
        return None
    lp = _seq_logprob(greedy, length_normalized=False)
    return None if lp is None else math.exp(lp)
