"""Confidence estimators computed from one question's stored samples.

Every estimator answers one question: *how sure is the model of its predicted answer?* The
inputs are what the store keeps for a question:

- ``labels``: the semantic class of each of the M samples (output of a collapsing function B;
  :data:`~semcal.types.NO_ANSWER` for samples with no extractable answer);
- ``prediction``: the predicted class (the plurality class, see :func:`semcal.grade.plurality`);
- ``completions``: the M :class:`~semcal.types.Completion` objects, in the same order as
  ``labels`` (used for token log-probabilities);
- ``greedy``: an optional temperature-0 completion, requested separately by the runner;
- ``extra``: values computed by estimators that need the model again (verbalised confidence,
  P(True)), stored by the runner and passed through here.

Two kinds of output exist. **Probabilities** (``Estimator.is_probability``) lie in [0, 1] and
are meant to be read as "the probability that the answer is correct"; calibration metrics
(smECE, ECE, Brier, log-loss) make sense for them. **Scores** (negative semantic entropy,
negative number of classes) only rank questions; use them for AUROC, never for smECE.

Estimators that need information that is missing (no log-probabilities, no greedy completion,
no extra model call) return ``None`` instead of raising.

Two estimators need one extra forward pass per question and are therefore functions of a
:class:`~semcal.backends.base.Sampler`: :func:`verbalized_confidence` and :func:`p_true`.

See docs/estimators.md for the definitions and references.

The package's rooms: ``inputs`` (the checks shared by the estimators), ``counts`` (from the
class counts alone), ``logprobs`` (from token log-probabilities), ``asked`` (the two that ask
the model again) and ``estimators`` (:data:`ESTIMATORS`, :func:`estimate_all`).
"""

from __future__ import annotations

from semcal.confidence.asked import (  # noqa: F401
    _check_pairs,
    _to_float,
    p_true,
    p_true_from_logprobs,
    parse_verbalized,
    verbalized_confidence,
)
from semcal.confidence.counts import (
    num_classes,
    semantic_confidence,
    semantic_confidence_smoothed,
    semantic_entropy,
)
from semcal.confidence.estimators import (  # noqa: F401
    ESTIMATORS,
    Estimator,
    EstimatorInput,
    _extra_value,
    _neg,
    estimate_all,
)
from semcal.confidence.inputs import (  # noqa: F401
    _check_completions,
    _check_labels,
    _plurality,
    _resolve_prediction,
    _seq_logprob,
    class_counts,
)
from semcal.confidence.logprobs import (
    class_probabilities_weighted,
    greedy_mean_token_prob,
    greedy_sequence_prob,
    logprob_weighted_confidence,
    max_sequence_prob,
    semantic_entropy_weighted,
)

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "EstimatorInput",
    "class_counts",
    "class_probabilities_weighted",
    "estimate_all",
    "greedy_mean_token_prob",
    "greedy_sequence_prob",
    "logprob_weighted_confidence",
    "max_sequence_prob",
    "num_classes",
    "p_true",
    "p_true_from_logprobs",
    "parse_verbalized",
    "semantic_confidence",
    "semantic_confidence_smoothed",
    "semantic_entropy",
    "semantic_entropy_weighted",
    "verbalized_confidence",
]
