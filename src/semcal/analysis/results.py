"""What an analysis gives: :class:`QuestionResult` per question and :class:`RunAnalysis` per run.

The per-question table (:meth:`RunAnalysis.table`) is a list of flat dicts, one per
question, ready for CSV/Parquet export (:func:`semcal.analysis.write_table`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semcal.grade import answer_confidence
from semcal.store import RunInfo
from semcal.types import NO_ANSWER


@dataclass
class QuestionResult:
    """One question of a run after analysis."""

    qid: str
    question: str
    task: str
    gold: tuple[str, ...]
    gold_labels: frozenset[str]
    n_samples: int
    labels: tuple[str, ...]
    texts: tuple[str, ...]
    prediction: str
    count: int
    correct: bool
    greedy_text: str | None = None
    greedy_label: str | None = None
    greedy_correct: bool | None = None
    estimates: dict[str, float | None] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        """Semantic confidence: the plurality share count / n_samples, 0 when the plurality
        is no answer (:func:`semcal.grade.answer_confidence`)."""
        return answer_confidence(self.prediction, self.count, self.n_samples)

    @property
    def class_counts(self) -> list[tuple[str, int]]:
        """Classes with their sample counts, largest first."""
        return Counter(self.labels).most_common()


@dataclass
class RunAnalysis:
    """A run's per-question results and summary metrics."""

    run: RunInfo
    collapse: str
    grader: str
    questions: list[QuestionResult]
    summary: dict[str, Any]
    estimators: list[dict[str, Any]]
    directory: Path | None = None
    #: the B audit (:func:`~semcal.analysis.collapse_audit`), plus ``against`` when compared
    #: with a second B
    audit: dict[str, Any] = field(default_factory=dict)
    #: how the B and the grader are named where the numbers are shown, with their judge model
    #: and options (:func:`~semcal.analysis.describe`): "auto",
    #: "judge[smollm2-135m-instruct]", "auto(answers_only=False)"; empty: the bare name
    collapse_label: str = ""
    grader_label: str = ""
    #: B against the run's hand labels (``semcal label``; :func:`semcal.label.check.b_check`),
    #: None when the run has no label file
    b_check: dict[str, Any] | None = None
    #: the grader object that graded the run (``grader``'s registered part, with its options
    #: and judge model): replays and diagnostics grade with it too
    grader_fn: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.collapse_label = self.collapse_label or self.collapse
        self.grader_label = self.grader_label or self.grader

    @property
    def confidences(self) -> np.ndarray:
        return np.array([q.confidence for q in self.questions], dtype=float)

    @property
    def correct(self) -> np.ndarray:
        return np.array([q.correct for q in self.questions], dtype=float)

    def table(self) -> list[dict[str, Any]]:
        """One flat dict per question (the CSV/Parquet export)."""
        rows = []
        for q in self.questions:
            row: dict[str, Any] = {
                "run": self.run.name,
                "model": self.run.model,
                "style": self.run.style,
                "qid": q.qid,
                "task": q.task,
                "question": q.question,
                "gold": " | ".join(q.gold),
                "n_samples": q.n_samples,
                "prediction": q.prediction,
                "count": q.count,
                "confidence": q.confidence,
                "correct": bool(q.correct),
                "n_classes": len(set(q.labels)),
                "no_answer": sum(1 for lab in q.labels if lab == NO_ANSWER),
                "classes": json.dumps(dict(q.class_counts), ensure_ascii=False),
                "samples": json.dumps([{"text": t, "label": lab} for t, lab in zip(q.texts, q.labels)],
                                      ensure_ascii=False),
                "greedy_text": q.greedy_text,
                "greedy_label": q.greedy_label,
                "greedy_correct": q.greedy_correct,
            }
            for name, v in q.estimates.items():
                row[f"conf_{name}"] = v
            rows.append(row)
        return rows
