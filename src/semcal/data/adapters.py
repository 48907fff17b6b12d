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
"""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from semcal.errors import InputError
from semcal.registry import Registry

#: the task families semcal knows (they pick few-shot examples and the default collapse)
TASKS = ("qa", "math")


@dataclass
class Parsed:
    """The fields one adapter extracts from one row (``id`` None: generate one)."""

    question: str
    answers: list[str]
    id: str | None = None
    task: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- field helpers


def norm_key(key: str) -> str:
    """Column-name normal form: lower case without spaces, dashes, dots or underscores.

    "Best Answer", "best_answer" and "BestAnswer" all become "bestanswer".
    """
    return re.sub(r"[\s_\-.]+", "", str(key).strip().lower())


class Row:
    """Loose, read-only view of a record: look columns up by their normal form."""

    def __init__(self, row: Mapping[str, Any], where: str):
        self.raw = row
        self.where = where
        self._keys: dict[str, str] = {}
        for k in row:
            self._keys.setdefault(norm_key(k), k)

    def has(self, name: str) -> bool:
        return name in self.raw or norm_key(name) in self._keys

    def key(self, name: str) -> str | None:
        if name in self.raw:
            return name
        return self._keys.get(norm_key(name))

    def get(self, *names: str, default: Any = None) -> Any:
        for name in names:
            k = self.key(name)
            if k is not None:
                return self.raw[k]
        return default

    def need(self, name: str, *alternatives: str) -> Any:
        for candidate in (name, *alternatives):
            k = self.key(candidate)
            if k is not None:
                return self.raw[k]
        wanted = " or ".join(repr(n) for n in (name, *alternatives))
        present = ", ".join(repr(str(k)) for k in list(self.raw)[:20]) or "none"
        raise InputError(f"missing column {wanted} (columns present: {present})", where=self.where)

    def columns(self) -> set[str]:
        return set(self._keys)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)  # None or NaN


def scalar_text(value: Any, name: str, where: str) -> str:
    """A string, or a number written without a spurious '.0'. Bools and containers are errors."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        raise InputError(f"field {name!r} must be text, got a boolean", where=where)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if _is_missing(value):
        return ""
    raise InputError(f"field {name!r} must be text, got {type(value).__name__}", where=where)


def question_text(value: Any, name: str, where: str) -> str:
    if not isinstance(value, str) and not _is_missing(value):
        raise InputError(
            f"field {name!r} must be a string, got {type(value).__name__}", where=where
        )
    text = "" if _is_missing(value) else value.strip()
    if not text:
        raise InputError(f"question field {name!r} is empty", where=where)
    return text


def answer_list(value: Any, name: str, where: str, *, split_on: str | None = None) -> list[str]:
    """Gold aliases from a string, a number, or a list of them. ``split_on`` splits strings.

    A string that holds a JSON list (as CSV cells often do) is read as that list.
    """
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("[") and s.endswith("]"):
            try:
                decoded = json.loads(s)
            except json.JSONDecodeError:
                decoded = None
            if isinstance(decoded, list):
                return answer_list(decoded, name, where)
        parts = s.split(split_on) if split_on else [s]
        return [p.strip() for p in parts if p.strip()]
    if isinstance(value, (list, tuple)):
        out: list[str] = []
        for item in value:
            if isinstance(item, (list, tuple, dict)):
                raise InputError(
                    f"field {name!r} must be a list of strings, found a nested "
                    f"{type(item).__name__}",
                    where=where,
                )
            text = scalar_text(item, name, where)
            if text:
                out.append(text)
        return out
    if hasattr(value, "tolist"):  # numpy arrays from pandas/pyarrow
        return answer_list(value.tolist(), name, where, split_on=split_on)
    text = scalar_text(value, name, where)
    return [text] if text else []


def dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def require_answers(answers: list[str], name: str, where: str) -> list[str]:
    answers = dedupe([a for a in answers if a.strip()])
    if not answers:
        raise InputError(f"answer field {name!r} is empty (no gold answer)", where=where)
    return answers


def optional_id(value: Any, name: str, where: str) -> str | None:
    """A question's own id, in Unicode NFC: the composed and decomposed spellings of one id
    ("café" as é or as e + U+0301) are one id, so two rows that differ only so are a duplicate,
    not two questions."""
    if _is_missing(value):
        return None
    text = unicodedata.normalize("NFC", scalar_text(value, name, where))
    return text or None


def _maybe_json_object(value: Any) -> Any:
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _literal_mapping(value: Any) -> dict[str, Any]:
    """Parse a metadata cell: a dict, JSON, or a Python-literal dict (as SimpleQA ships it).

    Only literals are parsed (``ast.literal_eval``), never executed code; anything else is kept
    as the raw string under ``"raw"``.
    """
    if isinstance(value, dict):
        return dict(value)
    if not isinstance(value, str) or not value.strip():
        return {}
    s = value.strip()
    try:
        obj = json.loads(s)
    except json.JSONDecodeError:
        obj = None
        if len(s) < 20_000:
            try:
                obj = ast.literal_eval(s)
            except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
                obj = None
    return dict(obj) if isinstance(obj, dict) else {"raw": s}


# ----------------------------------------------------------------------------- answer extraction

_NUMBER_COMMAS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")


def strip_number_commas(text: str) -> str:
    """'1,234,567' -> '1234567' (only commas that group digits in threes)."""
    return _NUMBER_COMMAS.sub("", text)


def gsm8k_final_answer(solution: str) -> str | None:
    """The answer after the last '####' of a GSM8K solution, commas removed; None if absent."""
    idx = solution.rfind("####")
    if idx < 0:
        return None
    ans = solution[idx + 4 :].strip()
    ans = strip_number_commas(ans).strip()
    if ans.endswith(".") and re.fullmatch(r"-?\d+(\.\d+)?\.", ans):
        ans = ans[:-1]
    return ans or None


_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced.

    ``\\boxed{\\frac{1}{2}}`` -> ``\\frac{1}{2}``; ``\\boxed 5`` -> ``5``. Returns None when
    there is no box or its braces never close.
    """
    matches = list(_BOXED.finditer(text))
    for m in reversed(matches):
        i = m.end()
        if i < len(text) and text[i] == "{":
            depth = 0
            j = i
            while j < len(text):
                c = text[j]
                if c == "\\" and j + 1 < len(text) and text[j + 1] in "{}":
                    j += 2  # an escaped brace (\{ or \}) does not open or close a group
                    continue
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        inner = text[i + 1 : j].strip()
                        return inner or None
                j += 1
            continue  # unbalanced: try an earlier box
        # "\boxed 5": the argument runs to the next space or '$'
        rest = re.match(r"[^\s$]+", text[i:])
        if rest:
            return rest.group(0)
    return None


# ----------------------------------------------------------------------------- the adapters


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


def check_task(task: str, where: str | None = None) -> str:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r} (known: {', '.join(TASKS)})", where=where)
    return task


@dataclass(frozen=True)
class Adapter:
    """A named question-set format."""

    name: str
    task: str | None  # None: per row (custom), defaulting to "qa"
    parse: Callable[[Row, str], Parsed]
    description: str
    #: (hub id, config, split) used for ``load_questions("hf:<name>")``
    hub: tuple[str, str | None, str] | None = None


# ----------------------------------------------------------------------------- registry

#: where a format registered without an ``order`` is tried by :func:`detect_adapter`: after
#: every built-in detector (give a smaller order to be tried before them)
DEFAULT_DETECT_ORDER = 100

#: every question-set format, by name. Metadata of a registration (see :func:`register_adapter`):
#: ``aliases`` (other names :func:`get_adapter` accepts), ``detect`` (``(Row) -> bool``: does a
#: file whose first row is this one hold this format?) and ``order`` (detectors run by increasing
#: order). ``custom`` has no detector: it is what a row no detector claims is read as.
ADAPTERS: Registry[Adapter] = Registry("question format")


def register_adapter(
    adapter: Adapter,
    *,
    aliases: tuple[str, ...] = (),
    detect: Callable[[Row], bool] | None = None,
    order: int = DEFAULT_DETECT_ORDER,
) -> Adapter:
    """Add (or replace) a format under ``adapter.name``; then ``format=<name>`` (and
    ``--format <name>``) reads it, and a file is detected as it when ``detect(first row)``."""
    return ADAPTERS.register(adapter.name, adapter, aliases=tuple(aliases), detect=detect,
                             order=order)


def _has(row: Row, *names: str) -> bool:
    cols = row.columns()
    return all(norm_key(n) in cols for n in names)


def _single_answer(row: Row) -> Any:
    """The decoded ``answer`` of a question/answer row with no ``answers`` column, else None."""
    if _has(row, "question", "answer") and not _has(row, "answers"):
        return _maybe_json_object(row.get("answer"))
    return None


def _looks_gsm8k(row: Row) -> bool:
    answer = _single_answer(row)
    return isinstance(answer, str) and re.search(r"####\s*\S", answer) is not None


_BUILT_IN: tuple[tuple[Adapter, tuple[str, ...], Callable[[Row], bool] | None, int], ...] = (
    (Adapter("triviaqa", "qa", _triviaqa, "TriviaQA (rc.nocontext)",
             ("mandarjoshi/trivia_qa", "rc.nocontext", "validation")),
     ("trivia_qa",), lambda r: isinstance(_single_answer(r), Mapping), 50),
    (Adapter("simpleqa", "qa", _simpleqa, "SimpleQA (problem/answer/metadata)",
             ("basicv8vc/SimpleQA", None, "test")),
     ("simple_qa",), lambda r: _has(r, "problem", "answer", "metadata"), 30),
    (Adapter("gsm8k", "math", _gsm8k, "GSM8K (answer ends with '#### n')",
             ("openai/gsm8k", "main", "test")),
     ("gsm_8k",), _looks_gsm8k, 60),
    (Adapter("openmathinstruct2", "math", _openmathinstruct2,
             "OpenMathInstruct-2 (problem/expected_answer)",
             ("nvidia/OpenMathInstruct-2", None, "train_1M")),
     ("openmathinstruct", "openmathinstruct_2", "omi2"),
     lambda r: _has(r, "problem", "expected_answer"), 10),
    (Adapter("math500", "math", _math500, "MATH-500 (problem/solution/answer, \\boxed{})",
             ("HuggingFaceH4/MATH-500", None, "test")),
     ("math_500",), lambda r: _has(r, "problem", "solution"), 20),
    (Adapter("truthfulqa", "qa", _truthfulqa,
             "TruthfulQA generation (question/best_answer/correct_answers)",
             ("truthfulqa/truthful_qa", "generation", "validation")),
     ("truthful_qa",),
     lambda r: _has(r, "question") and (_has(r, "best_answer") or _has(r, "correct_answers")),
     40),
    (Adapter("nq_open", "qa", _nq_open, "NQ-open (question, answer list)",
             ("google-research-datasets/nq_open", "nq_open", "validation")),
     ("nq", "nqopen", "natural_questions"),
     lambda r: isinstance(_single_answer(r), (list, tuple)), 70),
    (Adapter("custom", None, make_custom(), "any JSONL/CSV/Parquet with question/answer(s)"),
     (), None, DEFAULT_DETECT_ORDER),
)

for _adapter, _aliases, _detect, _order in _BUILT_IN:
    register_adapter(_adapter, aliases=_aliases, detect=_detect, order=_order)


def get_adapter(name: str) -> Adapter:
    """The format called ``name`` or one of its aliases (compared like column names, so
    ``"TriviaQA"`` and ``"trivia_qa"`` are ``triviaqa``); asks the registry as it is now."""
    key = norm_key(name)
    names = list(ADAPTERS)
    for registered in names:  # a registered name wins over another format's alias
        if norm_key(registered) == key:
            return ADAPTERS[registered]
    for registered in names:
        if key in {norm_key(a) for a in ADAPTERS.meta(registered).get("aliases", ())}:
            return ADAPTERS[registered]
    raise InputError(f"unknown question format {name!r} (known: {', '.join(names)})")


def detect_adapter(row: Mapping[str, Any]) -> Adapter:
    """Guess the format of a question set from its first row: the first registered detector
    (by ``order``, then registration) that claims the row, else ``custom``."""
    r = Row(row, "")
    orders = {name: ADAPTERS.meta(name).get("order", DEFAULT_DETECT_ORDER) for name in ADAPTERS}
    for name in sorted(orders, key=orders.__getitem__):
        detect = ADAPTERS.meta(name).get("detect")
        if detect is not None and detect(r):
            return ADAPTERS[name]
    return ADAPTERS.lookup("custom")


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
