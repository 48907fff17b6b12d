"""Single cells of the store: the values written (log-prob blobs, timestamps) and the lenient
decoders of the values read back.

The store is untrusted input (a copy cut short, a file edited by hand, a bad disk). Every
cell read back goes through one of the decoders below: a cell of the wrong type, text that
is not UTF-8, JSON that does not parse or has the wrong shape, a log-prob blob of the wrong
length raise _BadCell, which the reading method turns into one StoreError naming the store,
the table, the row and the column.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from typing import Any

import numpy as np


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _encode_logprobs(lp: Sequence[float] | None) -> bytes | None:
    if lp is None:
        return None
    return np.asarray(lp, dtype="<f4").tobytes()


class _BadCell(Exception):
    """A damaged cell: its column and what is wrong with it."""

    def __init__(self, column: str, why: str):
        super().__init__(column, why)
        self.column = column
        self.why = why


def _lenient_text(raw: bytes) -> str | bytes:
    """The connection's text factory: UTF-8 text as ``str``; anything else stays ``bytes``,
    which the decoders report with its row (SQLite's default factory raised an error that
    named no row)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _kind(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bytes):
        try:
            v.decode("utf-8")
        except UnicodeDecodeError:
            return "bytes that are not valid UTF-8"
        return "a blob"
    if isinstance(v, str):
        return "text"
    return "a number"


def _text(v: Any, column: str) -> str:
    if type(v) is str:
        return v
    raise _BadCell(column, f"{_kind(v)} (expected text)")


def _opt_text(v: Any, column: str) -> str | None:
    return None if v is None else _text(v, column)


def _int(v: Any, column: str) -> int:
    if type(v) is int:
        return v
    raise _BadCell(column, f"{_kind(v)} (expected an integer)")


def _real(v: Any, column: str) -> float:
    if type(v) in (int, float):
        return float(v)
    raise _BadCell(column, f"{_kind(v)} (expected a number)")


def _json(v: Any, column: str, shape: type) -> Any:
    """A JSON cell holding a ``dict`` (``shape=dict``) or a list of strings (``shape=list``)."""
    want = "a JSON object" if shape is dict else "a JSON list of strings"
    try:
        obj = json.loads(_text(v, column))
    except (ValueError, RecursionError):
        raise _BadCell(column, f"text that is not JSON (expected {want})") from None
    if shape is dict and isinstance(obj, dict):
        return obj
    if shape is list and isinstance(obj, list) and set(map(type, obj)) <= {str}:
        return obj
    raise _BadCell(column, f"JSON of another shape (expected {want})")


def _logprobs(v: Any, column: str) -> tuple[float, ...] | None:
    if v is None:
        return None
    if type(v) is bytes and len(v) % 4 == 0:
        return tuple(np.frombuffer(v, dtype="<f4").tolist())  # Python floats, as float(x) gives
    size = f" of {len(v)} bytes" if isinstance(v, bytes) else ""
    raise _BadCell(column, f"{_kind(v)}{size} (expected little-endian float32 values)")
