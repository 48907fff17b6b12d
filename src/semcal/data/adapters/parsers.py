"""The parse function of each known format, and the custom format with its column names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from semcal.data.adapters.answers import extract_boxed, gsm8k_final_answer
from semcal.data.adapters.fields import (
    Parsed,
    Row,
    _is_missing,
    _literal_mapping,
    _maybe_json_object,
    answer_list,
    check_task,
    optional_id,
    question_text,
    require_answers,
)
from semcal.errors import InputError


def _triviaqa(row: Row, where: str) -> Parsed:
    q = question_text(row.need("question"), "question", where)
    ans = _maybe_json_object(row.need("answer"))
    answers: list[str] = []
    if isinstance(ans, Mapping):
        a = Row(ans, where)
        value = a.get("value")
        if not _is_missing(value):
            answers += answer_list(value, "answer.value", where)
        for key in ("aliases", "normalized_aliases", "normalized_value"):
            v = a.get(key)
            if not _is_missing(v):
                answers += answer_list(v, f"answer.{key}", where)
    else:
        answers = answer_list(ans, "answer", where)
    answers = require_answers(answers, "answer", where)
    meta: dict[str, Any] = {}
    src = row.get("question_source")
    if isinstance(src, str) and src:
        meta["question_source"] = src
    return Parsed(q, answers, optional_id(row.get("question_id"), "question_id", where), "qa", meta)


def _simpleqa(row: Row, where: str) -> Parsed:
    q = question_text(row.need("problem", "question"), "problem", where)
    answers = require_answers(answer_list(row.need("answer"), "answer", where), "answer", where)
    meta: dict[str, Any] = {}
    md = _literal_mapping(row.get("metadata"))
    for key in ("topic", "answer_type"):
        if isinstance(md.get(key), str):
            meta[key] = md[key]
    if isinstance(md.get("urls"), list):
        meta["urls"] = [str(u) for u in md["urls"]]
    if "raw" in md:
        meta["metadata"] = md["raw"]
    return Parsed(q, answers, optional_id(row.get("id"), "id", where), "qa", meta)


def _gsm8k(row: Row, where: str) -> Parsed:
    q = question_text(row.need("question"), "question", where)
    solution = row.need("answer")
    if not isinstance(solution, str):
        raise InputError(
            f"field 'answer' must be the solution text ending in '#### <number>', got "
            f"{type(solution).__name__}",
            where=where,
        )
    final = gsm8k_final_answer(solution)
    if final is None:
        raise InputError(
            "field 'answer' has no final answer: GSM8K solutions end with '#### <number>'",
            where=where,
        )
    answers = [final]
    raw_final = solution[solution.rfind("####") + 4 :].strip()
    if raw_final and raw_final != final:
        answers.append(raw_final)  # keep "1,000" too, for exact-match graders
    meta = {"solution": solution[: solution.rfind("####")].strip()}
    return Parsed(q, answers, optional_id(row.get("id"), "id", where), "math", meta)


def _openmathinstruct2(row: Row, where: str) -> Parsed:
    q = question_text(row.need("problem"), "problem", where)
    answers = require_answers(
        answer_list(row.need("expected_answer"), "expected_answer", where), "expected_answer", where
    )
    meta: dict[str, Any] = {}
    src = row.get("problem_source")
    if isinstance(src, str) and src:
        meta["problem_source"] = src
    return Parsed(q, answers, optional_id(row.get("id"), "id", where), "math", meta)


def _math500(row: Row, where: str) -> Parsed:
    q = question_text(row.need("problem"), "problem", where)
    answers: list[str] = []
    if row.has("answer") and not _is_missing(row.get("answer")):
        answers = answer_list(row.get("answer"), "answer", where)
    solution = row.get("solution")
    if not answers:
        if not isinstance(solution, str):
            raise InputError(
                "missing column 'answer' and no 'solution' with a \\boxed{} answer", where=where
            )
        boxed = extract_boxed(solution)
        if boxed is None:
            raise InputError(
                "field 'answer' is empty and the solution has no complete \\boxed{...}",
                where=where,
            )
        answers = [boxed]
    answers = require_answers(answers, "answer", where)
    meta: dict[str, Any] = {}
    for key in ("subject", "level", "type"):
        v = row.get(key)
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            meta[key] = v
    ident = optional_id(row.get("unique_id", "id"), "unique_id", where)
    return Parsed(q, answers, ident, "math", meta)


def _truthfulqa(row: Row, where: str) -> Parsed:
    q = question_text(row.need("question"), "question", where)
    answers: list[str] = []
    best = row.get("best_answer")
    if not _is_missing(best):
        answers += answer_list(best, "best_answer", where)
    correct = row.get("correct_answers")
    if not _is_missing(correct):
        answers += answer_list(correct, "correct_answers", where, split_on=";")
    if best is None and correct is None:
        row.need("best_answer", "correct_answers")  # raises: names the missing columns
    answers = require_answers(answers, "best_answer/correct_answers", where)
    meta: dict[str, Any] = {}
    for key in ("category", "type", "source"):
        v = row.get(key)
        if isinstance(v, str) and v:
            meta[key] = v
    incorrect = row.get("incorrect_answers")
    if not _is_missing(incorrect):
        meta["incorrect_answers"] = answer_list(incorrect, "incorrect_answers", where, split_on=";")
    return Parsed(q, answers, optional_id(row.get("id"), "id", where), "qa", meta)


def _nq_open(row: Row, where: str) -> Parsed:
    q = question_text(row.need("question"), "question", where)
    answers = require_answers(answer_list(row.need("answer", "answers"), "answer", where), "answer", where)
    return Parsed(q, answers, optional_id(row.get("id"), "id", where), "qa", {})


#: default column names of the custom format (override any with ``fields=``)
CUSTOM_FIELDS: dict[str, str] = {
    "question": "question",
    "answer": "answer",
    "answers": "answers",
    "id": "id",
    "task": "task",
    "meta": "meta",
}


def make_custom(fields: Mapping[str, str] | None = None) -> Callable[[Row, str], Parsed]:
    """The custom adapter with column names ``fields`` (keys as in :data:`CUSTOM_FIELDS`).

    ``answer`` and ``answers`` are both optional but at least one must give an alias; each may
    hold a string, a number or a list (a CSV cell may hold a JSON list, or ';'-separated
    aliases in the ``answers`` column). Columns not mapped go into ``meta``.
    """
    names = dict(CUSTOM_FIELDS)
    if fields:
        unknown = sorted(set(fields) - set(CUSTOM_FIELDS))
        if unknown:
            raise InputError(
                f"unknown field mapping key(s) {unknown} (known: {', '.join(CUSTOM_FIELDS)})"
            )
        for k, v in fields.items():
            if not isinstance(v, str) or not v:
                raise InputError(f"field mapping {k!r} must name a column, got {v!r}")
            names[k] = v
    explicit = set(fields or {})

    def custom(row: Row, where: str) -> Parsed:
        qkey = row.key(names["question"])
        if qkey is None and "question" not in explicit:
            qkey = row.key("problem")
        if qkey is None:
            row.need(names["question"])  # raises with the column list
        q = question_text(row.raw[qkey], str(qkey), where)
        answers: list[str] = []
        used = {qkey}
        found_answer_column = False
        for role, split_on in (("answer", None), ("answers", ";")):
            k = row.key(names[role])
            if k is None:
                continue
            found_answer_column = True
            used.add(k)
            v = row.raw[k]
            if not _is_missing(v):
                answers += answer_list(v, str(k), where, split_on=split_on)
        if not found_answer_column:
            row.need(names["answer"], names["answers"])  # raises
        answers = require_answers(answers, f"{names['answer']}/{names['answers']}", where)
        ident = None
        k = row.key(names["id"])
        if k is not None:
            used.add(k)
            ident = optional_id(row.raw[k], str(k), where)
        task = None
        k = row.key(names["task"])
        if k is not None:
            used.add(k)
            t = row.raw[k]
            if not _is_missing(t) and str(t).strip():
                task = check_task(str(t).strip(), where)
        meta: dict[str, Any] = {}
        k = row.key(names["meta"])
        if k is not None:
            used.add(k)
            m = _maybe_json_object(row.raw[k])
            if isinstance(m, Mapping):
                meta.update(m)
            elif not _is_missing(m) and str(m).strip():
                meta[str(k)] = m
        for key, value in row.raw.items():
            if key not in used and not _is_missing(value) and value != "":
                meta.setdefault(str(key), value)
        return Parsed(q, answers, ident, task, meta)

    return custom
