"""The model-estimates step of a run: P(True) and verbalised confidence in each question's
plurality answer, asked of the model once the question's samples are committed.

The plurality answer comes from the run's B (with its style). Its classes are saved in the
store's class cache under the B's :func:`~semcal.collapse.collapse_key`, with the greedy
completion's, exactly as the analysis would save them, so the analysis reads them instead of
running B a second time; the estimates are stored under the same key."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from semcal.collapse import collapse_for, collapse_key, extract_answer, uses_judge
from semcal.collapse.extract import DEFAULT_UNMARKED
from semcal.confidence import p_true, verbalized_confidence
from semcal.grade import is_empty_answer, plurality
from semcal.spec import RunSpec
from semcal.store import RunInfo, Store
from semcal.types import NO_ANSWER, NON_ANSWERS, Question

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
        self._spec_b = True

    def bind(self, sampler: Any, collapse_fn: Callable[[Question, Sequence[str]], Any] | None) -> None:
        """The model to ask, and B when the caller overrides the spec's (then its classes are
        not cached: they need not be the spec B's)."""
        self.sampler = sampler
        self.collapse_fn = collapse_fn
        self._spec_b = collapse_fn is None

    @property
    def key(self) -> str:
        """The B's cache key: what the analysis of this run computes for the spec's B."""
        opts: dict[str, Any] = {}
        if uses_judge(self.spec.collapse) and getattr(self.collapse_fn, "sampler", None) is not None:
            opts["sampler"] = self.collapse_fn.sampler  # type: ignore[union-attr]
        return collapse_key(self.spec.collapse, opts)

    def _complete_ids(self) -> set[str]:
        """Ids of questions with a stored value for every estimator: read from the store once,
        then kept up to date by :meth:`compute` (re-reading it after every batch made a run
        quadratic in its number of questions)."""
        if self._complete is None:
            have = self.store.model_estimates(self.run_info.id, self.key)
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
        classes: list[tuple[str, int, tuple[str, ...], frozenset[str], str | None]] = []
        for q in todo:
            texts = [s.completion.text for s in self.store.samples(self.run_info.id, q.id)]
            if not texts:
                continue
            labels = self._labels(q, texts, classes)
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
        if classes:
            self.store.save_classes(self.run_info.id, self.key, classes)
        self.store.save_model_estimates(self.run_info.id, self.key, rows)
        self._complete_ids().update(q.id for q in todo)
        self.n_new += len(rated) + len(empty)
        self.seconds += time.monotonic() - t0
        log.debug("model estimates of %d questions in %.2fs", len(todo), time.monotonic() - t0)

    def _labels(self, q: Question, texts: list[str], classes: list[Any]) -> list[str]:
        """B's classes of a question's samples (the plurality's input); with the spec's B, the
        classes of the samples and the greedy completion are added to ``classes`` as the
        analysis caches them (an empty answer is left for the analysis to mark, as it does
        with every cached class)."""
        assert self.collapse_fn is not None
        greedy = (self.store.greedy_of(self.run_info.id, q.id)
                  if self._spec_b and self.spec.greedy else None)
        col = self.collapse_fn(q, texts + ([greedy.text] if greedy is not None else []))
        labs = [str(x) for x in col.labels]
        if self._spec_b and len(labs) == len(texts) + (greedy is not None):
            classes.append((q.id, len(texts), tuple(labs[: len(texts)]), frozenset(col.gold),
                            labs[-1] if greedy is not None else None))
        # the plurality as the analysis takes it: an empty answer is no answer in every B
        return [NO_ANSWER if is_empty_answer(t) else lab for t, lab in zip(texts, labs)]
