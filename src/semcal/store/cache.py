"""Values derived from a run's samples and keyed by the B that labelled them: cached
collapse results (``classes``), cached grades (``grades``), and the model-based confidence
estimates the runner computes (``model_estimates``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from semcal.store.cells import _int, _json, _opt_text, _real, _text
from semcal.store.connection import StoreConnection
from semcal.store.rows import _qid


class CacheMixin(StoreConnection):
    """The methods of :class:`semcal.store.Store` that read and write the ``classes``,
    ``grades`` and ``model_estimates`` tables."""

    # -- cached analysis

    def save_classes(
        self,
        run_id: int,
        collapse: str,
        rows: Iterable[tuple[str, int, Sequence[str], Iterable[str], str | None]],
    ) -> None:
        """Cache collapse results: rows of (qid, n_samples, labels, gold labels, greedy label)."""
        with self.transaction() as c:
            for qid, n, labels, gold, greedy_label in rows:
                c.execute(
                    "INSERT OR REPLACE INTO classes(run_id, qid, collapse, n_samples, labels, gold,"
                    " greedy_label) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        qid,
                        collapse,
                        int(n),
                        json.dumps(list(labels)),
                        json.dumps(sorted(gold)),
                        greedy_label,
                    ),
                )

    def classes(
        self, run_id: int, collapse: str
    ) -> dict[str, tuple[int, tuple[str, ...], frozenset[str], str | None]]:
        """Cached collapse results: qid -> (n_samples, labels, gold labels, greedy label)."""
        rows = self._read("SELECT * FROM classes WHERE run_id=? AND collapse=?", (run_id, collapse))
        return dict(self._decoded("classes", rows, lambda r: (_qid(r), (
            _int(r["n_samples"], "n_samples"),
            tuple(_json(r["labels"], "labels", list)),
            frozenset(_json(r["gold"], "gold", list)),
            _opt_text(r["greedy_label"], "greedy_label"),
        ))))

    def save_grades(
        self,
        run_id: int,
        collapse: str,
        grader: str,
        rows: Iterable[tuple[str, int, str, int, bool]],
    ) -> None:
        """Cache grades: rows of (qid, n_samples, prediction, count, correct)."""
        with self.transaction() as c:
            for qid, n, prediction, count, correct in rows:
                c.execute(
                    "INSERT OR REPLACE INTO grades(run_id, qid, collapse, grader, n_samples,"
                    " prediction, count, correct) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, qid, collapse, grader, int(n), prediction, int(count), int(bool(correct))),
                )

    def grades(
        self, run_id: int, collapse: str, grader: str
    ) -> dict[str, tuple[int, str, int, bool]]:
        """Cached grades: qid -> (n_samples, prediction, count, correct)."""
        rows = self._read("SELECT * FROM grades WHERE run_id=? AND collapse=? AND grader=?",
                          (run_id, collapse, grader))
        return dict(self._decoded("grades", rows, lambda r: (_qid(r), (
            _int(r["n_samples"], "n_samples"), _text(r["prediction"], "prediction"),
            _int(r["count"], "count"), bool(_int(r["correct"], "correct"))))))


    # -- model-based confidence estimates

    def save_model_estimates(
        self,
        run_id: int,
        collapse: str,
        rows: Iterable[tuple[str, str, int, str, str, float | None]],
    ) -> None:
        """Store model-based estimates: rows of (qid, estimator, n_samples, predicted label,
        answer text rated, value in [0, 1] or None when the model gave no usable value).
        One transaction; an existing (run, qid, estimator, collapse) row is replaced."""
        with self.transaction() as c:
            for qid, est, n, label, answer, value in rows:
                c.execute(
                    "INSERT OR REPLACE INTO model_estimates(run_id, qid, estimator, collapse,"
                    " n_samples, label, answer, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id, qid, est, collapse, int(n), label, answer,
                        None if value is None else float(value),
                    ),
                )

    def model_estimates(
        self, run_id: int, collapse: str
    ) -> dict[str, dict[str, tuple[float | None, str, int]]]:
        """Stored model-based estimates: qid -> estimator -> (value, predicted label, n_samples).

        Empty for a read-only store of an older schema without the table."""
        if not self._has_table("model_estimates"):
            return {}
        rows = self._read("SELECT * FROM model_estimates WHERE run_id=? AND collapse=?",
                          (run_id, collapse))
        out: dict[str, dict[str, tuple[float | None, str, int]]] = {}
        for qid, est, value in self._decoded("model_estimates", rows, lambda r: (
                _qid(r), _text(r["estimator"], "estimator"),
                (None if r["value"] is None else _real(r["value"], "value"),
                 _text(r["label"], "label"), _int(r["n_samples"], "n_samples")))):
            out.setdefault(qid, {})[est] = value
        return out
