"""Confidence estimators of an analysed run: which ones to compute
(:data:`DEFAULT_ESTIMATORS`, :func:`estimator_names`), the stored model-based estimates that
still apply (:func:`_model_extra`), and :func:`estimator_table`, which compares them on the
same samples."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from semcal import metrics as M
from semcal.analysis.results import QuestionResult
from semcal.analysis.summary import calibration_summary
from semcal.confidence import ESTIMATORS
from semcal.errors import InputError, SemcalError

log = logging.getLogger(__package__)

#: estimators shown by default (cheap, need only what a run stores)
DEFAULT_ESTIMATORS = (
    "semantic",
    "semantic_laplace",
    "logprob_weighted",
    "max_seq_prob",
    "greedy_mean_prob",
    "greedy_seq_prob",
    "neg_semantic_entropy",
    "neg_num_classes",
)


def estimator_names(estimators: Sequence[str] | str | None) -> list[str]:
    """The estimators asked for: a list of names, "all" (every registered estimator), a
    comma-separated string, or None (:data:`DEFAULT_ESTIMATORS`); an unknown name is an
    InputError listing the known ones."""
    if estimators is None:
        names = [n for n in DEFAULT_ESTIMATORS if n in ESTIMATORS]
    elif isinstance(estimators, str):
        names = list(ESTIMATORS) if estimators == "all" else [s for s in estimators.split(",") if s]
    else:
        names = list(estimators)
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown:
        raise InputError(
            f"unknown estimator(s) {', '.join(unknown)} (known: {', '.join(ESTIMATORS)}, all)"
        )
    return names


def with_stored(names: list[str], model_est: dict[str, Any]) -> list[str]:
    """``names`` plus every registered estimator that the runner stored for some question
    (P(True), verbalised), in registry order: what the default set shows of a run."""
    stored = {e for per_q in model_est.values() for e in per_q}
    return names + [n for n in ESTIMATORS if n in stored and n not in names]


def _model_extra(
    stored: dict[str, tuple[float | None, str, int]] | None, prediction: str, n_samples: int
) -> dict[str, float | None]:
    """The stored model-based estimates of one question that are about ``prediction`` over
    the same ``n_samples`` samples (else the value rated another answer: left out)."""
    if not stored:
        return {}
    return {
        name: value
        for name, (value, label, n) in stored.items()
        if label == prediction and n == n_samples
    }


def _safe(fn: Callable[[], float]) -> float:
    try:
        v = float(fn())
    except (SemcalError, ValueError, ZeroDivisionError, FloatingPointError) as exc:
        log.debug("metric undefined: %s", exc)
        return float("nan")
    return v


def _pairs(questions: Sequence[QuestionResult], name: str, est: Any) -> tuple[list, list]:
    """(values, correct) of estimator ``name`` over the questions where it has a finite value
    and its target (the prediction, or the greedy answer) has a verdict."""
    conf, ys = [], []
    for q in questions:
        v = q.estimates.get(name)
        if v is None or not math.isfinite(v):
            continue
        y = q.greedy_correct if getattr(est, "target", "prediction") == "greedy" else q.correct
        if y is None:
            continue
        conf.append(v)
        ys.append(float(y))
    return conf, ys


def estimator_table(
    questions: Sequence[QuestionResult], names: Sequence[str], n_boot: int = 200, seed: int = 0,
    summaries: Callable[[list[tuple[np.ndarray, np.ndarray, int]]], list[dict[str, Any]]] | None
    = None,
) -> list[dict[str, Any]]:
    """Compare confidence estimators on the same samples.

    Probabilities get smECE/ECE/Brier/AUROC; scores get AUROC only. An estimator about the
    greedy answer is graded against the greedy answer's correctness. Questions where an
    estimator has no value are left out of its row (``n`` says how many remain).
    ``summaries`` computes the rows' :func:`calibration_summary` calls as one batch (the
    analysis runs them in worker processes for a large run); default: one after another.
    """

    rows = []
    jobs: list[tuple[np.ndarray, np.ndarray, int]] = []
    needs: list[dict[str, Any]] = []
    for name in names:
        est = ESTIMATORS.get(name)
        if est is None:
            continue
        conf, ys = _pairs(questions, name, est)
        row: dict[str, Any] = {
            "estimator": name,
            "kind": "probability" if est.is_probability else "score",
            "description": est.description,
            "n": len(conf),
        }
        rows.append(row)
        if not conf:
            continue
        c, y = np.array(conf), np.array(ys)
        row["accuracy"] = float(y.mean())
        for metric in M.metric_names(needs="score"):  # what a mere score supports (AUROC)
            row[metric] = _safe(lambda c=c, y=y, f=M.METRICS[metric]: f(c, y))
        if est.is_probability:
            jobs.append((c, y, n_boot))
            needs.append(row)
    if summaries is None:
        done = [calibration_summary(c, y, n_boot=nb, seed=seed) for c, y, nb in jobs]
    else:
        done = summaries(jobs)
    for row, s in zip(needs, done):
        for k in ("mean_confidence", "smece", "smece_lo", "smece_hi", "ece", "brier"):
            row[k] = s[k]
    return rows
