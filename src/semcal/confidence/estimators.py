"""The registry of estimators (:data:`ESTIMATORS`), their input, and :func:`estimate_all`, which
runs them on one question."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from semcal.confidence.counts import (
    num_classes,
    semantic_confidence,
    semantic_confidence_smoothed,
    semantic_entropy,
)
from semcal.confidence.inputs import _check_completions, _check_labels, _resolve_prediction
from semcal.confidence.logprobs import (
    greedy_mean_token_prob,
    greedy_sequence_prob,
    logprob_weighted_confidence,
    max_sequence_prob,
    semantic_entropy_weighted,
)
from semcal.errors import InputError
from semcal.registry import Registry
from semcal.types import NON_ANSWERS, Completion


@dataclass(frozen=True)
class EstimatorInput:
    """Everything a sample-based estimator may look at for one question."""

    labels: tuple[str, ...]
    prediction: str
    completions: tuple[Completion, ...] | None = None
    greedy: Completion | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimator:
    """A named confidence estimator.

    ``is_probability``: the value is in [0, 1] and meant as P(correct), so calibration metrics
    apply; otherwise it is a score (higher = more confident) for ranking metrics (AUROC) only.
    ``needs``: subset of {"samples", "logprobs", "greedy", "model"}; "model" means one extra
    forward pass per question, done by the runner (the value arrives via ``extra[name]``).
    ``target``: which answer the confidence is about: "prediction" (the plurality class) or
    "greedy" (the greedy completion's answer, which may differ).
    """

    name: str
    is_probability: bool
    needs: frozenset[str]
    description: str
    fn: Callable[[EstimatorInput], float | None]
    target: str = "prediction"


def _extra_value(name: str) -> Callable[[EstimatorInput], float | None]:
    def get(inp: EstimatorInput) -> float | None:
        v = inp.extra.get(name)
        if v is None:
            return None
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        return f if math.isfinite(f) and 0.0 <= f <= 1.0 else None

    return get


def _neg(v: float | None) -> float | None:
    return None if v is None else -v


#: the confidence estimators by name (semcal.registry): register one here to add it
ESTIMATORS: Registry[Estimator] = Registry("estimator")
for _e in (
        Estimator(
            "semantic",
            True,
            frozenset({"samples"}),
            "plurality share count/M of the predicted class (Nakkiran et al. 2025)",
            lambda i: semantic_confidence(i.labels, i.prediction),
        ),
        Estimator(
            "semantic_laplace",
            True,
            frozenset({"samples"}),
            "add-one smoothed plurality share (count+1)/(M+K+1), K = distinct classes seen",
            lambda i: semantic_confidence_smoothed(i.labels, i.prediction),
        ),
        Estimator(
            "logprob_weighted",
            True,
            frozenset({"samples", "logprobs"}),
            "predicted class's share of the normalised (length-normalised) sample probabilities",
            lambda i: None
            if i.completions is None
            else logprob_weighted_confidence(i.labels, i.prediction, i.completions),
        ),
        Estimator(
            "max_seq_prob",
            True,
            frozenset({"samples", "logprobs"}),
            "largest sequence probability among the samples of the predicted class",
            lambda i: None
            if i.completions is None
            else max_sequence_prob(i.labels, i.prediction, i.completions),
        ),
        Estimator(
            "greedy_mean_prob",
            True,
            frozenset({"greedy", "logprobs"}),
            "exp(mean token log-prob) of the greedy answer (about the greedy answer)",
            lambda i: greedy_mean_token_prob(i.greedy),
            target="greedy",
        ),
        Estimator(
            "greedy_seq_prob",
            True,
            frozenset({"greedy", "logprobs"}),
            "exp(total token log-prob) of the greedy answer (about the greedy answer)",
            lambda i: greedy_sequence_prob(i.greedy),
            target="greedy",
        ),
        Estimator(
            "neg_semantic_entropy",
            False,
            frozenset({"samples"}),
            "minus the discrete (count-based) semantic entropy in nats; a score",
            lambda i: _neg(semantic_entropy(i.labels)),
        ),
        Estimator(
            "neg_semantic_entropy_weighted",
            False,
            frozenset({"samples", "logprobs"}),
            "minus the log-prob-weighted semantic entropy (Kuhn et al. 2023) in nats; a score",
            lambda i: None
            if i.completions is None
            else _neg(semantic_entropy_weighted(i.labels, i.completions)),
        ),
        Estimator(
            "neg_num_classes",
            False,
            frozenset({"samples"}),
            "minus the number of distinct semantic classes; a score",
            lambda i: float(-num_classes(i.labels)),
        ),
        Estimator(
            "verbalized",
            True,
            frozenset({"model"}),
            "model's stated confidence 0-100% in its answer, parsed (one extra generation)",
            _extra_value("verbalized"),
        ),
        Estimator(
            "p_true",
            True,
            frozenset({"model"}),
            "probability of 'True' vs 'False' for 'is the answer correct?' (one forward pass)",
            _extra_value("p_true"),
        ),
):
    ESTIMATORS.register(_e.name, _e)


def estimate_all(
    labels: Sequence[str],
    prediction: str | None,
    completions: Sequence[Completion] | None,
    greedy: Completion | None = None,
    extra: Mapping[str, Any] | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, float | None]:
    """Run every registered estimator (or those in ``names``) on one question.

    ``labels``/``completions`` are the M samples in matching order (``completions`` may be None
    when only labels are stored); ``prediction`` defaults to the plurality class. Model-based
    estimators ("verbalized", "p_true") read their value from ``extra[name]``. Returns
    name -> value, with None where the needed information is missing.

    When the prediction is not an answer (``NO_ANSWER``, ``REFUSAL``), the probabilities the
    samples give about it are 0, as the run's semantic confidence is
    (:func:`semcal.grade.answer_confidence`): there is no answer to be confident in.
    """
    labs = _check_labels(labels)
    _check_completions(labs, completions)
    pred = _resolve_prediction(labs, prediction)
    if names is None:
        chosen = list(ESTIMATORS.values())
    else:
        unknown = [n for n in names if n not in ESTIMATORS]
        if unknown:
            raise InputError(
                f"unknown estimator(s) {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(ESTIMATORS)})"
            )
        chosen = [ESTIMATORS[n] for n in names]
    inp = EstimatorInput(
        labels=tuple(labs),
        prediction=pred,
        completions=None if completions is None else tuple(completions),
        greedy=greedy,
        extra=dict(extra or {}),
    )
    out: dict[str, float | None] = {}
    no_answer = pred in NON_ANSWERS
    for est in chosen:
        if no_answer and est.is_probability and est.target == "prediction" and "samples" in est.needs:
            out[est.name] = 0.0
            continue
        v = est.fn(inp)
        out[est.name] = None if v is None or not math.isfinite(v) else float(v)
    return out
