"""Estimates of the size of a value's text, and of what an operation would build, made
before it runs (a walk over containers that stops at the limit)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from typing import Any

from semcal.backends.chat_template.limits import (
    MAX_SLOW,
    MAX_VALUE,
    TemplateLimitError,
    _check_estimate,
)

_END = object()


def _leaf_len(v: Any) -> tuple[int, Any]:
    """(characters ``v`` adds to the text form of a container holding it, its children)."""
    if isinstance(v, str):
        return len(v) + 4, None  # quotes and ", "
    if isinstance(v, (bytes, bytearray)):
        return len(v) + 5, None
    if isinstance(v, bool) or v is None:
        return 7, None
    if isinstance(v, int):
        return v.bit_length() * 3 // 10 + 4, None
    if isinstance(v, float):
        return 26, None
    if isinstance(v, (list, tuple, set, frozenset)):
        return 4, iter(v)
    if isinstance(v, dict):
        return 4, itertools.chain.from_iterable(v.items())
    if isinstance(v, (type({}.keys()), type({}.values()), type({}.items()))):
        return 16, iter(v)
    from jinja2.runtime import Undefined
    from jinja2.utils import Namespace

    if isinstance(v, Undefined):
        return 1, None
    if isinstance(v, Namespace):
        return 16, iter((object.__getattribute__(v, "_Namespace__attrs"),))
    return 64, None  # an object without children: a loop, a macro, a generator ...


def _text_len(x: Any, limit: int) -> int:
    """An estimate of ``len(str(x))`` that stops walking once it passes ``limit``.

    Each item visited adds at least one, so the walk takes at most ``limit`` steps however
    large (or self-referencing) the container is.
    """
    if isinstance(x, str):
        return len(x)
    total = 0
    stack: list[Iterator[Any]] = [iter((x,))]
    while stack:
        v = next(stack[-1], _END)
        if v is _END:
            stack.pop()
            continue
        n, children = _leaf_len(v)
        total += n
        if total > limit:
            return total
        if children is not None:
            stack.append(children)
    return total


def _texts_len(values: Sequence[Any], limit: int) -> int:
    """Summed :func:`_text_len` of ``values``, stopping once past ``limit``."""
    total = 0
    for v in values:
        total += _text_len(v, limit - total)
        if total > limit:
            break
    return total


def _replace_estimate(s: Any, old: Any, new: Any, count: Any = None) -> int:
    # s.replace(old, new): up to len(s) / max(len(old), 1) + 1 copies of new
    if not (isinstance(s, (str, bytes)) and isinstance(old, (str, bytes))
            and isinstance(new, (str, bytes))):
        return 0
    copies = len(s) // max(len(old), 1) + 1
    if isinstance(count, int) and 0 <= count < copies:
        copies = count
    return len(s) + copies * len(new)


def _format_estimate(fmt: Any, values: Sequence[Any], marker: str) -> int:
    """Upper bound on a format's length: each field may take all of the values' text."""
    if not isinstance(fmt, str):
        return 0
    _check_estimate(len(fmt), "a format string", MAX_SLOW)
    # widths written in the format ('{:>4000000}') or passed as values ('%*s') add up
    widths = _format_widths(fmt)
    widths += sum(abs(v) for v in values if isinstance(v, int) and not isinstance(v, bool))
    fields = fmt.count(marker)
    return len(fmt) + widths + fields * _texts_len(values, MAX_VALUE)


def _join_estimate(items: Any, sep: Any) -> int:
    if not isinstance(items, (list, tuple)):
        return _text_len(items, MAX_VALUE)
    sep_len = len(sep) if isinstance(sep, (str, bytes)) else 0
    return sep_len * max(len(items) - 1, 0) + _texts_len(items, MAX_VALUE)


_DIGITS = re.compile(r"\d+")


def _format_widths(fmt: str) -> int:
    """Sum of the numbers written in a format string ('%1000000000s', '{:>1e9}'); one over
    the limit is refused at once."""
    total = 0
    for m in _DIGITS.finditer(fmt):
        if len(m.group()) > 7 or int(m.group()) > MAX_VALUE:
            raise TemplateLimitError(
                f"chat template: a format width {m.group()} beyond the limit {MAX_VALUE}")
        total += int(m.group())
    return total
