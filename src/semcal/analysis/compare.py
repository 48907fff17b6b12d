"""How a B names and partitions a run: :func:`describe` (the name under which a B or a grader
made its numbers), :func:`collapse_audit` (the figures to read before trusting a B) and
:func:`compare_collapses` (two Bs on the same run, sample by sample); :func:`is_silent` and
:func:`silent_note` (a run whose prediction is mostly no answer, whose smECE says nothing)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from semcal.analysis.results import RunAnalysis
from semcal.collapse import split_options
from semcal.grade import is_tied
from semcal.types import NO_ANSWER, NON_ANSWERS, REFUSAL


def describe(name: str, opts: dict[str, Any] | None = None) -> str:
    """The name under which a B or a grader made its numbers: ``name``, its judge model in
    brackets and its other options in parentheses ("judge[smollm2-135m-instruct]",
    "auto(answers_only=False)", "numeric(rel_tol=0.01)"). Objects passed in as options (an
    encoder) are left out."""
    sampler, opts = split_options(opts)
    label = name if sampler is None else f"{name}[{sampler.model_name}]"
    if opts:
        label += "(" + ", ".join(f"{k}={opts[k]}" for k in sorted(opts)) + ")"
    return label


#: a run whose prediction is no answer (or a refusal) on more than this share of its questions
#: is *silent*: those questions have confidence 0 and are wrong, so its smECE is near 0 however
#: little the model knows; a comparison with it draws no conclusion
MAX_SILENT = 0.5


def is_silent(summary: Mapping[str, Any]) -> bool:
    """Whether a run's summary (its ``no_prediction_rate``) makes it silent (:data:`MAX_SILENT`)."""
    rate = summary.get("no_prediction_rate")
    return rate is not None and math.isfinite(rate) and rate > MAX_SILENT


def silent_note(summary: Mapping[str, Any]) -> str:
    """What the audit and the report say of a silent run (``""`` for one that is not)."""
    if not is_silent(summary):
        return ""
    return (f"the prediction is no answer on {100 * summary['no_prediction_rate']:.1f}% of the "
            f"questions (more than {MAX_SILENT:.0%}): those have confidence 0 and are graded "
            "wrong, so its smECE is near 0 whatever the model knows; compare it with nothing")


def collapse_audit(labels: Sequence[Sequence[str]]) -> dict[str, Any]:
    """How a B partitioned a run's samples (``labels``: one sequence of class labels per
    question): the figures to read before trusting its numbers.

    ``classes_per_question`` (mean distinct classes, non-answers included),
    ``singleton_share`` (share of answer classes holding one sample: high means B splits),
    ``no_answer_rate`` and ``refusal_rate`` (share of samples), ``tie_rate`` (share of
    questions whose plurality is a tie, decided by the tie rule).
    """

    labels = [tuple(x) for x in labels]
    n_q = len(labels)
    n_s = sum(len(x) for x in labels)
    classes = singles = answer_classes = 0
    for q_labels in labels:
        counts = Counter(q_labels)
        classes += len(counts)
        answer_counts = [c for lab, c in counts.items() if lab not in NON_ANSWERS]
        answer_classes += len(answer_counts)
        singles += sum(c == 1 for c in answer_counts)
    nan = float("nan")
    return {
        "questions": n_q,
        "classes_per_question": classes / n_q if n_q else nan,
        "singleton_share": singles / answer_classes if answer_classes else nan,
        "no_answer_rate": sum(x.count(NO_ANSWER) for x in labels) / n_s if n_s else nan,
        "refusal_rate": sum(x.count(REFUSAL) for x in labels) / n_s if n_s else nan,
        "tie_rate": sum(is_tied(x) for x in labels) / n_q if n_q else nan,
    }


def compare_collapses(a: RunAnalysis, b: RunAnalysis, max_listed: int = 200) -> dict[str, Any]:
    """Agreement of two Bs on the same run: a sample agrees when the set of samples sharing its
    class is the same under both. Returns the agreement (share of samples), the share of
    questions with the same plurality class (as a set of samples), and the disagreeing samples
    (at most ``max_listed``: question id, sample index, text, ``label`` under ``a``'s B and
    ``other_label`` under ``b``'s)."""
    other = {q.qid: q for q in b.questions}
    n = agree = same_plurality = n_q = 0
    listed: list[dict[str, Any]] = []
    for q in a.questions:
        o = other.get(q.qid)
        if o is None or o.n_samples != q.n_samples:
            continue
        n_q += 1
        members_a = [frozenset(j for j, x in enumerate(q.labels) if x == lab) for lab in q.labels]
        members_b = [frozenset(j for j, x in enumerate(o.labels) if x == lab) for lab in o.labels]
        top_a = frozenset(j for j, x in enumerate(q.labels) if x == q.prediction)
        top_b = frozenset(j for j, x in enumerate(o.labels) if x == o.prediction)
        same_plurality += top_a == top_b
        for i, (ma, mb) in enumerate(zip(members_a, members_b)):
            n += 1
            if ma == mb:
                agree += 1
            elif len(listed) < max_listed:
                listed.append({"qid": q.qid, "sample": i, "text": q.texts[i],
                               "label": q.labels[i], "other_label": o.labels[i]})
    nan = float("nan")
    return {
        "against": b.collapse,
        "agreement": agree / n if n else nan,
        "same_plurality": same_plurality / n_q if n_q else nan,
        "disagreements": n - agree,
        "listed": listed,
    }
