"""What an adapter returns (:class:`Parsed`), the task names, and the helpers that read the
fields of a row (:class:`Row`, loose column names) and check them."""

from __future__ import annotations

import ast
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from semcal.errors import InputError

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


def check_task(task: str, where: str | None = None) -> str:
    if task not in TASKS:
        raise InputError(f"unknown task {task!r} (known: {', '.join(TASKS)})", where=where)
    return task


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
