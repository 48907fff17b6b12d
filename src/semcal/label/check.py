"""The B check: a run's B against the hand labels a person gave a sample of the run's
questions (``semcal label``).

On the labelled questions it compares B's classes with the hand classes response by response
and metric by metric, reusing the benchmark's measures of :mod:`semcal.collapse.labelled`:
pairwise same-class precision / recall / F1 and the grade error with their bootstrap
intervals (:func:`~semcal.collapse.labelled.score_collapse`, fed B's stored classes and the
grader's stored verdicts), and accuracy, mean confidence and smECE from B against from the
hand labels with paired intervals (:func:`~semcal.collapse.labelled.metric_deltas`). It ends
in one plain sentence: whether B's error is smaller than the metric's own interval, or
could change the conclusion.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from semcal.collapse.labelled import (
    DELTA_METRICS,
    LabelledItem,
    MetricQuestion,
    hand_correct,
    metric_deltas,
    score_collapse,
)
from semcal.grade import Grade
from semcal.label.labels import NO_GOLD, HandLabels
from semcal.types import Collapsed, Question

#: the metrics' names in the sentence
_NAMES = {"accuracy": "accuracy", "mean_confidence": "mean confidence", "smece": "smECE"}


def b_check(questions: Sequence[Any], hand: Mapping[str, HandLabels], summary: Mapping[str, Any],
            *, n_boot: int = 1000, seed: int = 0, path: str | Path | None = None
            ) -> dict[str, Any]:
    """The B check of one analysed run: ``questions`` are its
    :class:`~semcal.analysis.QuestionResult` (B's labels and the grader's verdict), ``hand``
    the run's hand labels by question id and ``summary`` the run's calibration summary (for
    the metrics' own intervals). Only questions labelled completely and analysed with the
    same number of samples count. Keys: ``file``, ``questions``, ``incomplete``, the scores of
    :func:`score_collapse` (``precision``, ``recall``, ``f1`` [``f1_lo``, ``f1_hi``],
    ``answer_f1``, ``grade_error`` [``grade_error_lo``, ``grade_error_hi``],
    ``plurality_differs``), ``deltas`` (:func:`metric_deltas`, None with fewer than 2 questions)
    and ``verdict`` (the sentence)."""
    done = [h for h in hand.values() if h.complete]
    by_id = {q.qid: q for q in questions}
    pairs = [(by_id[h.qid], h) for h in done
             if h.qid in by_id and by_id[h.qid].n_samples == len(h.labels)]
    out: dict[str, Any] = {"file": None if path is None else str(path), "questions": len(pairs),
                           "incomplete": len(hand) - len(done)}
    if not pairs:
        out.update(deltas=None, verdict="no question is labelled completely yet "
                   "(every response and which class is correct): nothing to compare")
        return out
    out.update(_pairwise(pairs))
    mq = [MetricQuestion(tuple(q.labels), bool(q.correct), _hand(h), _hand_correct(h))
          for q, h in pairs]
    out["deltas"] = metric_deltas(mq, n_boot=n_boot, seed=seed) if len(mq) >= 2 else None
    out["verdict"] = verdict(out["deltas"], summary, len(pairs))
    return out


def _hand(h: HandLabels) -> tuple[str, ...]:
    return tuple(str(lab) for lab in h.labels)


def _hand_correct(h: HandLabels) -> bool:
    return h.gold != NO_GOLD and hand_correct(_hand(h), str(h.gold))


def _pairwise(pairs: Sequence[tuple[Any, HandLabels]]) -> dict[str, Any]:
    """:func:`score_collapse` with B's stored classes as the B and the stored verdicts as
    the grader (nothing is collapsed or graded again)."""
    stored = {q.qid: q for q, _ in pairs}

    def collapse(question: Question, texts: Sequence[str]) -> Collapsed:
        return Collapsed(labels=tuple(stored[question.id].labels), gold=frozenset())

    def grader(question: Question, col: Collapsed, texts: Sequence[str]) -> Grade:
        q = stored[question.id]
        return Grade(prediction=q.prediction, count=q.count, n=q.n_samples, correct=q.correct)

    items = [LabelledItem("run", "", "", Question(q.qid, q.question, tuple(q.gold) or ("?",)),
                          tuple(q.texts), _hand(h),
                          # a gold label no hand class has: no hand class is correct
                          "\x00no-gold" if h.gold == NO_GOLD else str(h.gold))
             for q, h in pairs]
    s = score_collapse(collapse, items, grader)  # type: ignore[arg-type]
    keys = ("precision", "recall", "f1", "f1_lo", "f1_hi", "answer_f1", "grade_error",
            "grade_error_lo", "grade_error_hi", "plurality_differs")
    return {k: s[k] for k in keys}


def verdict(deltas: Mapping[str, Any] | None, summary: Mapping[str, Any], n: int) -> str:
    """One sentence: for each metric, B's shift (B - hand, with its paired interval) against
    the half-width of the metric's own 95% interval on the whole run. B's error is smaller
    than the metric's interval when its whole interval is inside; it changes the conclusion
    when the shift itself is not; between the two it could."""
    if deltas is None:
        return (f"only {n} question labelled: label at least 2 (30 or more for a useful "
                "check) to compare the metrics")
    rows: dict[str, list[str]] = {"larger": [], "unsure": [], "smaller": []}
    for m in DELTA_METRICS:
        d = float(deltas[f"{m}_delta"])
        lo, hi = float(deltas[f"{m}_delta_lo"]), float(deltas[f"{m}_delta_hi"])
        half = _half_width(summary, m)
        if math.isnan(half):
            continue
        ci = "" if math.isnan(lo) else f" [{lo:+.3f}, {hi:+.3f}]"
        far = abs(d) if math.isnan(lo) else max(abs(d), abs(lo), abs(hi))
        kind = "larger" if abs(d) > half else "unsure" if far > half else "smaller"
        rows[kind].append(f"{_NAMES[m]} {d:+.3f}{ci} against +-{half:.3f}")
    few = (f"; {n} questions labelled, label more to be sure" if n < 30
           else f"; {n} questions labelled")
    if rows["larger"]:
        return ("B's error is larger than the metric's own interval and could change the "
                "conclusion: B moves " + ", ".join(rows["larger"])
                + " (the half-width of the metric's own 95% interval)" + few)
    if rows["unsure"]:
        return ("B's error could change the conclusion: its interval reaches past the "
                "metric's own for " + ", ".join(rows["unsure"]) + few)
    if rows["smaller"]:
        return ("B's error is smaller than the metrics' own intervals (" + ", ".join(
            rows["smaller"]) + "): it does not change the conclusion" + few)
    return "the run's metrics have no intervals (n_boot 0): compare the shifts by eye" + few


def _half_width(summary: Mapping[str, Any], m: str) -> float:
    try:
        lo, hi = float(summary[f"{m}_lo"]), float(summary[f"{m}_hi"])
    except (KeyError, TypeError, ValueError):
        return math.nan
    return (hi - lo) / 2


def unchecked_note(style: str, run: str, directory: str) -> str:
    """What to say of a run without hand labels in a style where B's error is known to matter
    (sentences, chains of thought; docs/collapse.md): that its B is unchecked and the command
    that checks it. "" for the other styles."""
    if style not in ("sentence", "cot"):
        return ""
    kind = "chain-of-thought" if style == "cot" else "sentence"
    return (f"none (no hand labels). On {kind} answers B's error has moved smECE by as much as "
            "the effects compared (docs/collapse.md); label a sample to measure it here: "
            f"semcal label {shlex.quote(directory)} --run {shlex.quote(run)}")


__all__ = ["b_check", "unchecked_note", "verdict"]
