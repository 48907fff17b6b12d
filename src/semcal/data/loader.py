"""``load_questions``: one entry point for every question-set file and format."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from semcal.data.adapters import (
    ADAPTERS,
    Adapter,
    Parsed,
    Row,
    check_task,
    detect_adapter,
    get_adapter,
    make_custom,
)
from semcal.data.readers import FILE_TYPES, detect_file_type, iter_records
from semcal.errors import InputError
from semcal.limits import MAX_QUESTIONS, check_int, regular_file
from semcal.types import Question


def stable_id(prefix: str, question: str) -> str:
    """A short id that depends only on the question text (whitespace-normalised).

    The same question gets the same id whatever the file order or ``limit``, so stored runs
    can be resumed after the file is re-sorted or extended.
    """
    text = re.sub(r"\s+", " ", question.strip())
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    return f"{prefix}-{digest}"


def _hub_defaults(name: str) -> tuple[str, str | None, str | None, str | None]:
    """Map ``hf:<something>`` to (hub id, adapter name, config, split) when it is a known set."""
    lowered = name.lower()
    for adapter in ADAPTERS.values():
        if adapter.hub is None:
            continue
        hub_id, config, split = adapter.hub
        if lowered in (hub_id.lower(), adapter.name, hub_id.split("/")[-1].lower()):
            return hub_id, adapter.name, config, split
    try:
        adapter = get_adapter(name)
    except InputError:
        return name, None, None, None
    if adapter.hub is not None:
        hub_id, config, split = adapter.hub
        return hub_id, adapter.name, config, split
    return name, None, None, None


def _check_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"limit must be an integer >= 1 or None, got {limit!r}")
    return check_int("limit", limit)


def _split_format(format: str | None, file_type: str | None) -> tuple[str | None, str | None]:
    """Move a file type given as ``format`` to ``file_type`` and check the file type is known."""
    if format is not None and format.lower() in FILE_TYPES:
        if file_type is not None and file_type != format.lower():
            raise InputError(f"format {format!r} is a file type but file_type={file_type!r}")
        file_type, format = format.lower(), None
    if file_type is not None and file_type not in FILE_TYPES:
        raise InputError(f"unknown file type {file_type!r} (known: {', '.join(FILE_TYPES)})")
    return format, file_type


def _pick_adapter(format: str | None, fields: Mapping[str, str] | None) -> Adapter | None:
    """The adapter named by ``format``, or a custom one built from ``fields``; None: guess later."""
    adapter: Adapter | None = get_adapter(format) if format is not None else None
    if fields:
        if adapter is not None and adapter.name != "custom":
            raise InputError(f"fields= applies to the custom format, not {adapter.name!r}")
        adapter = Adapter("custom", None, make_custom(fields), "custom with field mapping")
    return adapter


def load_questions(
    source: str | Path,
    format: str | None = None,
    task: str | None = None,
    limit: int | None = None,
    *,
    file_type: str | None = None,
    fields: Mapping[str, str] | None = None,
    split: str | None = None,
    config: str | None = None,
) -> list[Question]:
    """Read a question set into a list of :class:`~semcal.types.Question`.

    Args:
        source: a file path (``.jsonl``, ``.json``, ``.csv``, ``.tsv``, ``.parquet``; ``.gz``
            allowed for text files), a folder saved with ``datasets``' ``save_to_disk``, or
            ``"hf:<hub id or format name>"`` to fetch with ``datasets.load_dataset``
            (e.g. ``"hf:openai/gsm8k"``, ``"hf:gsm8k"``; needs network or the HF cache).
        format: the question-set format, one of :data:`semcal.data.ADAPTERS` (``"triviaqa"``,
            ``"simpleqa"``, ``"gsm8k"``, ``"openmathinstruct2"``, ``"math500"``,
            ``"truthfulqa"``, ``"nq_open"``, ``"custom"``). None: guessed from the columns
            of the first row. A file type name (``"jsonl"``, ``"csv"``...) is also accepted
            here and means ``file_type``.
        task: force every question's task (``"qa"`` or ``"math"``); default: the format's.
        limit: keep only the first ``limit`` questions (read stops there).
        file_type: override the type guessed from the extension: one of ``FILE_TYPES``.
        fields: column names for the custom format, e.g. ``{"question": "q", "answers":
            "gold"}``; keys: question, answer, answers, id, task, meta.
        split, config: the split / configuration of a Hugging Face dataset.

    Returns:
        The questions in file order. Missing ids become a hash of the question text
        (``"<format>-<12 hex>"``; a repeated question gets ``"-2"``, ``"-3"``... appended).

    Raises:
        InputError: the message names the file and line (or row) and what is wrong.
        MissingExtraError: Parquet without pyarrow, or datasets not installed.
    """
    limit = _check_limit(limit)
    if task is not None:
        check_task(task)
    format, file_type = _split_format(format, file_type)
    adapter = _pick_adapter(format, fields)

    source_str = str(source)
    streaming = False
    if source_str.startswith("hf:"):
        hub_id, hub_adapter, hub_config, hub_split = _hub_defaults(source_str[3:])
        if not hub_id:
            raise InputError("empty Hugging Face dataset name after 'hf:'")
        source_str, file_type = hub_id, "hf"
        if adapter is None and hub_adapter is not None:
            adapter = get_adapter(hub_adapter)
        config = config if config is not None else hub_config
        split = split if split is not None else hub_split
        streaming = limit is not None  # do not download a whole hub set for a few rows
    elif file_type is None:
        path = Path(source_str)
        if not path.exists():
            hint = ""
            if re.fullmatch(r"[\w.\-]+/[\w.\-]+", source_str):
                hint = f" (for a Hugging Face hub dataset write 'hf:{source_str}')"
            raise InputError(f"file not found{hint}", where=source_str)
        if not path.is_dir():  # a folder may be a saved HF dataset
            regular_file(path, "dataset file")  # a FIFO or /dev/zero: refused at once
        file_type = detect_file_type(path)
    elif file_type != "hf" and not Path(source_str).exists():
        raise InputError("file not found", where=source_str)

    records = iter_records(source_str, file_type, config=config, split=split, streaming=streaming)
    return _build(records, adapter, task, limit, source_str)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_text(parsed: Parsed, where: str) -> None:
    """Every text of a question must be valid Unicode: a lone surrogate (JSON allows
    ``"\\ud800"``) cannot be tokenised, stored or shown, so it fails here, naming the line."""
    fields = [("question", parsed.question), *(("answer", a) for a in parsed.answers)]
    if parsed.id is not None:
        fields.append(("id", parsed.id))
    for name, text in fields:
        if isinstance(text, str) and not _encodable(text):
            raise InputError(f"{name} holds a lone surrogate (invalid Unicode)", where=where)


def _build(
    records: Any, adapter: Adapter | None, task: str | None, limit: int | None, source: str
) -> list[Question]:
    questions: list[Question] = []
    explicit_ids: dict[str, str] = {}  # id -> where first seen
    generated: dict[str, int] = {}
    generated_ids: set[str] = set()
    for record in records:
        if adapter is None:
            adapter = detect_adapter(record.row)
        parsed: Parsed = adapter.parse(Row(record.row, record.where), record.where)
        _check_text(parsed, record.where)
        if parsed.id is not None:
            if parsed.id in explicit_ids:
                raise InputError(
                    f"duplicate id {parsed.id!r} (first used at {explicit_ids[parsed.id]})",
                    where=record.where,
                )
            explicit_ids[parsed.id] = record.where
            qid = parsed.id
        else:
            prefix = "q" if adapter.name == "custom" else adapter.name
            base = stable_id(prefix, parsed.question)
            count = generated.get(base, 0) + 1
            generated[base] = count
            qid = base if count == 1 else f"{base}-{count}"
            generated_ids.add(qid)
        q_task = task or parsed.task or adapter.task or "qa"
        meta = dict(parsed.meta)
        meta.setdefault("format", adapter.name)
        questions.append(
            Question(id=qid, question=parsed.question, answers=tuple(parsed.answers),
                     task=q_task, meta=meta)
        )
        if limit is not None and len(questions) >= limit:
            break
        if len(questions) > MAX_QUESTIONS:
            raise InputError(
                f"more than {MAX_QUESTIONS} questions; take the first N with --limit N "
                "(or limit= in the spec)", where=source)
    if not questions:  # pragma: no cover - readers raise on empty input first
        raise InputError("no questions found", where=source)
    # an explicit id may collide with a generated one only by an unlucky choice of names
    clash = set(explicit_ids) & generated_ids
    if clash:
        raise InputError(f"generated ids collide with explicit ids: {sorted(clash)[:3]}",
                         where=source)
    return questions


__all__ = ["load_questions", "stable_id"]
