"""The state of one render: its clock and the running total of what it has built, and the
iterators that read the clock and count items as they go."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from semcal.backends.chat_template.limits import MAX_TOTAL, TemplateLimitError, _check_size, _size


class _Render:
    """The clock and the running total of what one render has built."""

    def __init__(self, limit: float) -> None:
        self.deadline = time.monotonic() + limit
        self.limit = limit
        self.built = 0

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"chat template: rendering took longer than {self.limit:g} s")

    def charge(self, n: int) -> None:
        self.built += n
        if self.built > MAX_TOTAL:
            raise TemplateLimitError(
                f"chat template: the values it builds add up to more than {MAX_TOTAL} "
                "characters or items")


_state = threading.local()


def _tick() -> None:
    r = getattr(_state, "current", None)
    if r is not None:
        r.check()


def _made(x: Any, what: str) -> Any:
    """Check a freshly built value and count it against the render's total."""
    _check_size(x, what)
    r = getattr(_state, "current", None)
    if r is not None:
        r.charge(_size(x))
    return x


class _Metered:
    """A generator returned by a filter, counted and timed item by item."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterator[Any]) -> None:
        self._items = items

    def __iter__(self) -> _Metered:
        return self

    def __next__(self) -> Any:
        item = next(self._items)
        _tick()
        r = getattr(_state, "current", None)
        if r is not None:
            r.charge(8 + _size(item))  # a new object costs about eight list slots
        return item


def _ticking(iterable: Any) -> Iterator[Any]:
    """The iterable of a ``{% for %}`` loop, reading the clock at every step."""
    for item in iterable:
        _tick()
        yield item


def _materialized(values: Sequence[Any]) -> tuple[Any, ...]:
    # a metered generator becomes a list (counted as it is drawn) so it can be measured
    return tuple(list(v) if isinstance(v, _Metered) else v for v in values)
