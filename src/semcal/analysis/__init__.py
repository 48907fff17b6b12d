"""From the store to numbers: collapse, grade, confidence and metrics. No model needed.

The analysis of a stored run goes label -> grade -> estimate -> summarise, one room each:

- :mod:`~semcal.analysis.label`: B over a run's samples (:func:`read_run`, ``Labeller``),
  in worker processes for a large run (``_CollapsePool``), classes cached in the store.
- :mod:`~semcal.analysis.grading`: the plurality class and the greedy answer graded with the
  run's grader.
- :mod:`~semcal.analysis.estimate`: the confidence estimators (:data:`DEFAULT_ESTIMATORS`,
  :func:`estimator_table`).
- :mod:`~semcal.analysis.summary`: :func:`calibration_summary`, and
  :func:`_summaries_in_parallel` (a batch of summaries, a large one's bootstrap split among
  worker processes).
- :mod:`~semcal.analysis.run`: :func:`analyze_run` (the steps above, in order) and
  :func:`analyze_dir`; :mod:`~semcal.analysis.results`: :class:`RunAnalysis` and
  :class:`QuestionResult`.
- Around them: :mod:`~semcal.analysis.export` (:func:`write_table`),
  :mod:`~semcal.analysis.compare` (:func:`describe`, :func:`collapse_audit`,
  :func:`compare_collapses`), :mod:`~semcal.analysis.replay` (:func:`adaptive_replay`),
  :mod:`~semcal.analysis.timing` (:func:`sampling_time`: how long a run's sampling took
  across its sessions) and :mod:`~semcal.analysis.workers` (the worker processes and when to
  use them).

The thresholds of the worker processes (``PARALLEL_MIN_TEXTS``, ``PARALLEL_MIN_BOOT_WORK``,
``SPLIT_MIN_BOOT_WORK``), ``_fork_pool``, ``_collapse_fn``, ``open_judge`` and ``_JUDGES``
are read from this package when they are used: set them here, not on a room.
"""

from __future__ import annotations

import os as os  # noqa: F401  (tests reach os.cpu_count through ``semcal.analysis.os``)

from semcal.analysis.compare import collapse_audit, compare_collapses, describe
from semcal.analysis.estimate import (
    DEFAULT_ESTIMATORS,
    estimator_table,
)
from semcal.analysis.estimate import _model_extra as _model_extra
from semcal.analysis.estimate import _safe as _safe
from semcal.analysis.export import _csv_safe as _csv_safe
from semcal.analysis.export import write_table
from semcal.analysis.grading import _plurality as _plurality
from semcal.analysis.label import _cached_classes_fresh as _cached_classes_fresh
from semcal.analysis.label import _collapse_chunk as _collapse_chunk
from semcal.analysis.label import _collapse_fn as _collapse_fn
from semcal.analysis.label import _CollapsePool as _CollapsePool
from semcal.analysis.label import _parallel_collapse as _parallel_collapse
from semcal.analysis.label import _uncached_texts as _uncached_texts
from semcal.analysis.replay import _question_of as _question_of
from semcal.analysis.replay import adaptive_replay
from semcal.analysis.results import QuestionResult, RunAnalysis
from semcal.analysis.run import _JUDGES as _JUDGES
from semcal.analysis.run import _hand_check as _hand_check
from semcal.analysis.run import _judge_sampler as _judge_sampler
from semcal.analysis.run import _resolve_run as _resolve_run
from semcal.analysis.run import analyze_dir, analyze_run
from semcal.analysis.summary import _summaries_in_parallel as _summaries_in_parallel
from semcal.analysis.summary import _summary_job as _summary_job
from semcal.analysis.summary import _summary_tasks as _summary_tasks
from semcal.analysis.summary import calibration_summary
from semcal.analysis.timing import sampling_note, sampling_time
from semcal.analysis.workers import PARALLEL_MIN_BOOT_WORK as PARALLEL_MIN_BOOT_WORK
from semcal.analysis.workers import PARALLEL_MIN_TEXTS as PARALLEL_MIN_TEXTS
from semcal.analysis.workers import SPLIT_MIN_BOOT_WORK as SPLIT_MIN_BOOT_WORK
from semcal.analysis.workers import _fork_pool as _fork_pool
from semcal.analysis.workers import _stop_pool as _stop_pool
from semcal.analysis.workers import _worker_start as _worker_start
from semcal.collapse import open_judge as open_judge

__all__ = [
    "DEFAULT_ESTIMATORS",
    "QuestionResult",
    "RunAnalysis",
    "adaptive_replay",
    "analyze_dir",
    "analyze_run",
    "calibration_summary",
    "collapse_audit",
    "compare_collapses",
    "describe",
    "estimator_table",
    "sampling_note",
    "sampling_time",
    "write_table",
]
