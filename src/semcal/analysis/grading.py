"""Grade an analysed run with its grader: the plurality class of each question against the
gold classes, and the greedy answer too (:func:`grade_question`); the judge grader's verdicts
are cached in the store under :func:`grader_key` (:func:`save_grades`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from semcal.analysis.label import Labelled
from semcal.analysis.results import QuestionResult
from semcal.errors import StoreError
from semcal.grade import GRADER_REGISTRY, get_grader, plurality
from semcal.store import RunInfo, Store
from semcal.types import Collapsed, Question

log = logging.getLogger(__package__)


def _plurality(labels: Sequence[str]) -> tuple[str, int]:
    label, count = plurality(list(labels))
    return str(label), int(count)


def make_grader(grader: str, gopts: dict[str, Any]) -> Any:
    """The registered grader ``grader`` with its options, looked up now (a grader registered
    after import counts)."""
    GRADER_REGISTRY.lookup(grader)
    return get_grader(grader, **gopts)


def grader_key(grader: str, gopts: dict[str, Any]) -> str:
    """The key of a grader's cached verdicts: its name, and for the judge its model too."""
    if GRADER_REGISTRY.flag(grader, "judge"):
        return f"judge:{gopts.get('sampler').model_name}"
    return grader


def grade_question(q: Question, lab: Labelled, grader: str, grader_obj: Any,
                   cached: tuple[Any, ...] | None) -> tuple[str, int, bool, bool | None]:
    """(prediction, its count, whether it is correct, whether the greedy answer is correct)
    of one question; ``cached``: the question's cached verdict (the judge grader's), used
    when it is about the same prediction over as many samples."""
    prediction, count = _plurality(lab.labels)
    if cached is not None and cached[0] == len(lab.texts) and cached[1] == prediction:
        correct = cached[3]
    else:
        gr = grader_obj(q, Collapsed(tuple(lab.labels), lab.gold), list(lab.texts))
        correct = bool(gr.correct)
    if lab.g is None:
        g_correct = None
    elif GRADER_REGISTRY.flag(grader, "judge") and lab.g_label == prediction:
        g_correct = correct  # the judge graded this class already (one response of it)
    else:
        g_correct = bool(grader_obj(q, Collapsed((lab.g_label,), lab.gold), [lab.g.text]).correct)
    return prediction, count, correct, g_correct


def save_grades(store: Store, info: RunInfo, ckey: str, key: str,
                results: list[QuestionResult]) -> None:
    """Cache the run's verdicts; a store that cannot take them is logged."""
    try:
        store.save_grades(
            info.id, ckey, key,
            [(r.qid, r.n_samples, r.prediction, r.count, r.correct) for r in results],
        )
    except StoreError as exc:
        log.info("could not cache grades: %s", exc)
