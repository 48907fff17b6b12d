"""The results store: one SQLite file (``semcal.sqlite``) per experiment directory.

The store is the single source of truth between sampling and analysis. It holds

- ``runs``: one row per run (model × question set × style × sampling parameters × M), with
  the full run spec as JSON and a ``key`` (hash of everything that changes the samples) used
  to find the run again on resume;
- ``questions``: the question set of each run (text, gold aliases, task, prompt), so analysis
  needs neither the data file nor the model;
- ``samples``: every sampled completion (round, index, text, token count, token log-probs as a
  little-endian float32 blob, tokens as JSON, finish reason, seed);
- ``greedy``: the greedy (temperature 0) completion of each question, for baselines;
- ``classes``: cached collapse results (collapse name -> one label per sample, gold labels);
- ``grades``: cached grades (collapse × grader -> prediction, count, correct);
- ``model_estimates``: model-based confidence of a question's plurality answer (P(True),
  verbalised confidence), keyed by (run, question, estimator, collapse), computed by the runner
  with one extra model call each (schema version 2; a version-1 store gains the table when it
  is opened for writing).

Writes are grouped so that one question's batch of samples is one transaction: a process
killed at any instant leaves either the whole batch or none of it. The database runs in WAL
mode, every statement is parameterised, and the schema carries a version number.

The package's rooms: ``schema`` (the tables, their version, migrations), ``connection``
(opening the file, schema checks, transactions, error messages), ``runs``, ``samples``
(questions, samples, greedy completions) and ``cache`` (classes, grades, model estimates),
the three parts of :class:`Store` assembled in ``core``; ``lock`` (:class:`RunLock`,
:func:`check_writable`); ``records`` (:class:`RunInfo`, :class:`StoredSample`,
:func:`spec_key`); ``cells`` and ``rows`` (writing cells, and decoding what is read back).
"""

from semcal.files import LOCK_DIR, STORE_NAME
from semcal.store.core import Store, has_store, open_store
from semcal.store.lock import RunLock, check_writable
from semcal.store.records import RunInfo, StoredSample, spec_key
from semcal.store.schema import SCHEMA_VERSION

__all__ = [
    "LOCK_DIR",
    "SCHEMA_VERSION",
    "STORE_NAME",
    "RunInfo",
    "RunLock",
    "Store",
    "StoredSample",
    "check_writable",
    "has_store",
    "open_store",
    "spec_key",
]
