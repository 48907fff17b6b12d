"""Decoding whole rows of the store into records, and naming a row in an error message.

Each decoder reads its cells through :mod:`semcal.store.cells`, so a damaged cell raises
``_BadCell`` naming its column.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from semcal.errors import InputError
from semcal.store.cells import _BadCell, _int, _json, _logprobs, _opt_text, _real, _text
from semcal.store.records import RunInfo, StoredSample
from semcal.types import Completion, Question


def _stored_completion(text: Any, finish: Any, n_tokens: Any, logprobs: Any,
                       tokens: Any) -> Completion:
    """A completion from its stored columns (checked)."""
    return Completion(text=_text(text, "text"), finish_reason=_text(finish, "finish_reason"),
                      n_tokens=_int(n_tokens, "n_tokens"),
                      token_logprobs=_logprobs(logprobs, "token_logprobs"),
                      tokens=None if tokens is None else tuple(_json(tokens, "tokens", list)))


#: the columns that name a row in a message, and how they are called there
_ROW_KEYS = (("id", "run"), ("run_id", "run"), ("qid", "question"), ("idx", "sample"),
             ("collapse", "B"), ("grader", "grader"), ("estimator", "estimator"))


def _row_name(row: Mapping[str, Any]) -> str:
    """'run 1, question 'q1', sample 2' from the key columns a row holds (``meta``: its key)."""
    parts = [f"{label} {row[col]!r}" if isinstance(row[col], (str, bytes)) else
             f"{label} {row[col]}" for col, label in _ROW_KEYS if col in row]
    if not parts and "key" in row:
        parts = [f"key {row['key']!r}"]
    return ", ".join(parts) or "a row"


def _qid(r: sqlite3.Row) -> str:
    return _text(r["qid"], "qid")


def _schema_version(r: sqlite3.Row) -> int:
    try:
        return int(_text(r["value"], "value"))
    except ValueError:
        raise _BadCell("value", f"{r['value']!r} (expected a schema version number)") from None


def _run_from_row(r: sqlite3.Row) -> RunInfo:
    samples = "samples" if "samples" in r.keys() else "n_samples"  # schema < 3: n_samples
    is_chat = r["is_chat"]
    return RunInfo(
        id=_int(r["id"], "id"),
        name=_text(r["name"], "name"),
        key=_text(r["key"], "key"),
        model=_text(r["model"], "model"),
        backend=_text(r["backend"], "backend"),
        style=_text(r["style"], "style"),
        dataset=_text(r["dataset"], "dataset"),
        temperature=_real(r["temperature"], "temperature"),
        top_p=_real(r["top_p"], "top_p"),
        max_tokens=_int(r["max_tokens"], "max_tokens"),
        samples=_int(r[samples], samples),
        seed=_int(r["seed"], "seed"),
        adaptive=bool(_int(r["adaptive"], "adaptive")),
        is_chat=None if is_chat is None else bool(_int(is_chat, "is_chat")),
        semcal_version=_text(r["semcal_version"], "semcal_version"),
        created=_text(r["created"], "created"),
        finished=_opt_text(r["finished"], "finished"),
        spec=_json(r["spec"], "spec", dict),
    )


def _question_from_row(r: sqlite3.Row) -> Question:
    qid, text = _qid(r), _text(r["question"], "question")
    answers, task = _json(r["answers"], "answers", list), _text(r["task"], "task")
    meta = _json(r["meta"], "meta", dict)
    try:
        return Question(id=qid, question=text, answers=tuple(answers), task=task, meta=meta)
    except InputError as exc:  # an empty question or no gold answer
        raise _BadCell("question" if "text" in str(exc) else "answers", str(exc)) from None


def _sample(qid: Any, rnd: Any, idx: Any, seed: Any, text: Any, finish: Any, n_tokens: Any,
            logprobs: Any, tokens: Any) -> StoredSample:
    return StoredSample(_text(qid, "qid"), _int(rnd, "round"), _int(idx, "idx"),
                        _int(seed, "seed"),
                        _stored_completion(text, finish, n_tokens, logprobs, tokens))
