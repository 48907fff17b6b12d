"""The model-estimates step of a run: P(True) and verbalised confidence in each question's
plurality answer, asked of the model once the question's samples are committed."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from semcal.collapse import collapse_for, extract_answer
from semcal.collapse.extract import DEFAULT_UNMARKED
from semcal.confidence import p_true, verbalized_confidence
from semcal.grade import plurality
from semcal.spec import RunSpec
from semcal.store import RunInfo, Store
from semcal.types import NON_ANSWERS, Question

log = logging.getLogger(__package__)  # one logger for the runner, whichever room logs


class _Estimates:
    """Model-based confidence estimates (P(True), verbalised) of a run's questions.

    :meth:`compute` fills in the estimates of the given questions that are done and not yet
    stored under the run's collapse name; :meth:`finished` is the runner's hook after each
    batch, given the questions that batch finished (work per batch grows with the batch, not
    with the run).
    """

    NAMES = ("p_true", "verbalized")

    def __init__(self, store: Store, run_info: RunInfo, spec: RunSpec):
        self.store = store
        self.run_info = run_info
        self.spec = spec
        self.sampler: Any = None
        self.collapse_fn: Callable[[Question, Sequence[str]], Any] | None = None
        self.n_new = 0
        self.seconds = 0.0
        self._complete: set[str] | None = None

    def bind(self, sampler: Any, collapse_fn: Callable[[Question, Sequence[str]], Any] | None) -> None:
        self.sampler = sampler
        self.collapse_fn = collapse_fn

    def _complete_ids(self) -> set[str]:
        """Ids of questions with a stored value for every estimator: read from the store once,
        then kept up to date by :meth:`compute` (re-reading it after every batch made a run
        quadratic in its number of questions)."""
        if self._complete is None:
            have = self.store.model_estimates(self.run_info.id, self.spec.collapse)
            self._complete = {qid for qid, got in have.items() if all(n in got for n in self.NAMES)}
        return self._complete

    def missing(self, questions: Sequence[Question], *, done: bool = False) -> list[Question]:
        """The questions (done ones only) without a stored value for every estimator.
        ``done``: the caller knows the questions are done (no read of the done ids)."""
        complete = self._complete_ids()
        done_ids = None if done else self.store.done_ids(self.run_info.id)
        return [
            q for q in questions
            if (done_ids is None or q.id in done_ids) and q.id not in complete
        ]

    def finished(self, questions: Sequence[Question]) -> None:
        """The runner's hook after a batch: estimates of the questions it just finished."""
        self.compute(questions, done=True)

    def compute(self, questions: Sequence[Question], *, done: bool = False) -> None:
        todo = self.missing(questions, done=done)
        if not todo:
            return

        t0 = time.monotonic()
        if self.collapse_fn is None:
            self.collapse_fn = collapse_for(self.spec.collapse, style=self.spec.style,
                                            judge=self.spec.judge)
        rated: list[tuple[Question, str, str, int]] = []  # (question, label, answer, n)
        empty: list[tuple[Question, str, int]] = []
        for q in todo:
            texts = [s.completion.text for s in self.store.samples(self.run_info.id, q.id)]
            if not texts:
                continue
            labels = [str(x) for x in self.collapse_fn(q, texts).labels]
            label, _ = plurality(labels)
            label = str(label)
            first = texts[labels.index(label)]
            answer = (extract_answer(first, q.task, question=q.question, style=self.spec.style,
                                     unmarked=DEFAULT_UNMARKED)
                      if label not in NON_ANSWERS else None)
            if label in NON_ANSWERS or answer is None or not answer.strip():
                empty.append((q, label, len(texts)))  # nothing to rate: values stay None
            else:
                rated.append((q, label, answer.strip(), len(texts)))
        names = self.NAMES
        values: dict[str, list[float | None]] = {}
        if rated:
            qs = [r[0] for r in rated]
            ans = [r[2] for r in rated]
            values["p_true"] = p_true(self.sampler, qs, ans)
            values["verbalized"] = verbalized_confidence(self.sampler, qs, ans, seed=self.spec.seed)
        rows: list[tuple[str, str, int, str, str, float | None]] = []
        for i, (q, label, answer, n) in enumerate(rated):
            rows += [(q.id, name, n, label, answer, values[name][i]) for name in names]
        for q, label, n in empty:
            rows += [(q.id, name, n, label, "", None) for name in names]
        self.store.save_model_estimates(self.run_info.id, self.spec.collapse, rows)
        self._complete_ids().update(q.id for q in todo)
        self.n_new += len(rated) + len(empty)
        self.seconds += time.monotonic() - t0
        log.debug("model estimates of %d questions in %.2fs", len(todo), time.monotonic() - t0)
