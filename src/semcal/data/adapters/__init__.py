"""Named adapters: how the rows of each standard question set become :class:`Question` fields.

Every adapter is a function ``(row, where) -> Parsed`` that reads one row (a ``dict`` from
:mod:`semcal.data.readers`) and raises :class:`~semcal.errors.InputError` naming ``where``
when a field is missing or malformed. Column names are matched loosely: case, spaces,
dashes and underscores do not matter, so ``"Best Answer"`` finds ``best_answer``.

Formats (the column names of the public releases):

=====================  ========================================================  =====
name                   columns used                                              task
=====================  ========================================================  =====
``triviaqa``           question, answer{value, aliases, normalized_aliases},     qa
                       question_id
``simpleqa``           problem, answer, metadata (topic, answer_type)            qa
``gsm8k``              question, answer (solution ending in ``#### 42``)         math
``openmathinstruct2``  problem, expected_answer, problem_source                  math
``math500``            problem, answer (or ``\\boxed{}`` in solution),           math
                       subject, level, unique_id
``truthfulqa``         question, best_answer, correct_answers (list or           qa
                       ';'-separated), incorrect_answers, category
``nq_open``            question, answer (list of strings)                        qa
``custom``             question, answer and/or answers, id, task, meta           row's
                       (names overridable with ``fields=``)                      task
=====================  ========================================================  =====

The formats are the :class:`~semcal.registry.Registry` :data:`ADAPTERS`; another one is one
:func:`register_adapter` call (its aliases and a detector of its rows are metadata).

The package's rooms: ``fields`` (:class:`Parsed`, :class:`Row`, ``TASKS`` and the field
helpers ``question_text``, ``answer_list``, ``require_answers``, ``optional_id``, ...),
``answers`` (final answers from worked solutions), ``parsers`` (the parse function of each
format, ``make_custom``) and ``formats`` (:data:`ADAPTERS`, :class:`Adapter`,
:func:`register_adapter`, the built-in formats and their detectors).
"""

from __future__ import annotations

# every name of the former single module that is not private stays importable from here
from semcal.data.adapters.answers import extract_boxed, gsm8k_final_answer, strip_number_commas
from semcal.data.adapters.fields import (  # noqa: F401
    TASKS,
    Parsed,
    Row,
    _literal_mapping,
    _maybe_json_object,
    answer_list,
    check_task,
    dedupe,
    norm_key,
    optional_id,
    question_text,
    require_answers,
    scalar_text,
)
from semcal.data.adapters.formats import (
    ADAPTERS,
    DEFAULT_DETECT_ORDER,
    Adapter,
    detect_adapter,
    get_adapter,
    register_adapter,
)
from semcal.data.adapters.parsers import CUSTOM_FIELDS, make_custom

__all__ = [
    "ADAPTERS",
    "CUSTOM_FIELDS",
    "DEFAULT_DETECT_ORDER",
    "TASKS",
    "Adapter",
    "Parsed",
    "Row",
    "check_task",
    "detect_adapter",
    "extract_boxed",
    "get_adapter",
    "gsm8k_final_answer",
    "make_custom",
    "register_adapter",
    "strip_number_commas",
]
