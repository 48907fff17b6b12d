"""The checks of one question's inputs shared by the estimators: labels, the prediction, the
completions that go with the labels, and a sample's sequence log-probability."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from semcal.errors import InputError
from semcal.grade import plurality
from semcal.types import Completion


def _check_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise InputError("labels must be a sequence of class labels, not a single string")
    out = [str(x) for x in labels]
    if not out:
        raise InputError("labels is empty: a question needs at least one sample")
    return out


def _plurality(labels: Sequence[str]) -> str:
    """The plurality class, by the project-wide tie rule (:func:`semcal.grade.plurality`)."""

    return plurality(list(labels))[0]


def _resolve_prediction(labels: list[str], prediction: str | None) -> str:
    if prediction is None:
        return _plurality(labels)
    return str(prediction)


def class_counts(labels: Sequence[str]) -> dict[str, int]:
    """Number of samples per semantic class, in order of first appearance."""
    return dict(Counter(_check_labels(labels)))


def _check_completions(labels: list[str], completions: Sequence[Completion] | None) -> None:
    if completions is not None and len(completions) != len(labels):
        raise InputError(
            f"{len(completions)} completions for {len(labels)} labels: they must match one to one"
        )


def _seq_logprob(c: Completion, length_normalized: bool) -> float | None:
    """Total (or per-token mean) log-probability of one completion, or None if unknown."""
    lps = c.token_logprobs
    if lps is None or len(lps) == 0:
        return None
    try:
        total = math.fsum(lps)
    except ValueError:  # +inf and -inf together
        return None
    if math.isnan(total) or total == math.inf:
        return None  # NaN or +inf in the engine output: treat as unknown
    return total / len(lps) if length_normalized else total
