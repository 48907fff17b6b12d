"""What adaptive sampling would have done on a fixed-M run (``analyze --replay-adaptive``),
from its stored samples: :func:`adaptive_replay`."""

from __future__ import annotations

from typing import Any

from semcal.adaptive import next_round_size, should_stop
from semcal.analysis.results import QuestionResult, RunAnalysis
from semcal.analysis.summary import calibration_summary
from semcal.grade import get_grader
from semcal.types import Collapsed, Question


def adaptive_replay(
    analysis: RunAnalysis, adaptive: Any, n_boot: int = 0, seed: int = 0
) -> dict[str, Any]:
    """What adaptive sampling would have done on a fixed-M run, from its stored samples.

    For each question, the stopping rule of :mod:`semcal.runner` is applied to its labels in
    sample order (the samples are i.i.d., so a prefix is distributed like an adaptive run's
    samples); the question's confidence and verdict are then recomputed on the prefix.
    Returns the samples used (total and as a fraction of the fixed run's) and the calibration
    summaries of both, so the change in smECE can be read off (``smece_fixed`` and
    ``smece_adaptive``). ``adaptive`` is an :class:`~semcal.spec.AdaptiveSpec`; the most a
    question gets is the run's M (``samples``). The prefix is graded by the run's grader
    (``RunAnalysis.grader_fn``: its tolerance, its judge), as the full run was.
    """
    samples = analysis.run.samples
    grader = analysis.grader_fn or get_grader(analysis.grader)
    conf_a, corr_a, used = [], [], []
    for q in analysis.questions:
        labels = list(q.labels)
        n = 0
        while True:
            step = next_round_size(n, adaptive, samples)
            if step == 0 or n + step > len(labels):
                n = len(labels)
                break
            n += step
            if should_stop(labels[:n], adaptive, samples):
                break
        gr = grader(_question_of(q), Collapsed(tuple(labels[:n]), q.gold_labels),
                    list(q.texts[:n]))
        conf_a.append(gr.confidence)
        corr_a.append(float(gr.correct))
        used.append(n)
    fixed = analysis.summary
    adapt = calibration_summary(conf_a, corr_a, n_boot=n_boot, seed=seed)
    total_fixed = int(sum(q.n_samples for q in analysis.questions))
    return {
        "run": analysis.run.name,
        "n_questions": len(used),
        "samples_fixed": total_fixed,
        "samples_adaptive": int(sum(used)),
        "fraction": sum(used) / total_fixed if total_fixed else float("nan"),
        "stopped_early": int(sum(u < q.n_samples for u, q in zip(used, analysis.questions))),
        "smece_fixed": fixed.get("smece"),
        "smece_adaptive": adapt["smece"],
        "accuracy_fixed": fixed.get("accuracy"),
        "accuracy_adaptive": adapt["accuracy"],
        "ece_fixed": fixed.get("ece"),
        "ece_adaptive": adapt["ece"],
        "per_question_samples": used,
    }


def _question_of(q: QuestionResult) -> Question:
    """The :class:`~semcal.types.Question` a grader needs, from an analysed question."""
    return Question(id=q.qid, question=q.question, answers=tuple(q.gold), task=q.task)
