"""The bounds of one render and the checks that refuse a value past them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from semcal.errors import InputError

#: longest string, list or mapping a template may build (characters / items)
MAX_VALUE = 1 << 22
#: longest input (text form) of a filter that does Python-level work per character or item
MAX_SLOW = 1 << 20
#: most characters and items all the values built in one render may add up to
MAX_TOTAL = 1 << 24
#: widest integer a template may build (bits)
MAX_INT_BITS = 1 << 16
#: longest rendered prompt (characters)
MAX_OUTPUT = 1 << 22
#: most items one ``range`` may give
MAX_RANGE = 100_000
#: most paragraphs (and words per paragraph) ``lipsum`` may give
MAX_LIPSUM = 100
#: seconds one render may take
TIME_LIMIT = 2.0

#: variables llama-cpp-python's Jinja2ChatFormatter passes besides the messages and tokens
LLAMA_CPP_VARIABLES: Mapping[str, Any] = {
    "functions": None, "function_call": None, "tools": None, "tool_choice": None,
}


class TemplateLimitError(InputError):
    """A chat template went past a memory or time bound while rendering."""


def _size(x: Any) -> int:
    if isinstance(x, (str, bytes, list, tuple, dict, set, frozenset)):
        return len(x)
    return 0


def _refuse(what: str, limit: int) -> TemplateLimitError:
    return TemplateLimitError(
        f"chat template: {what} would hold more than {limit} characters or items")


def _check_size(x: Any, what: str) -> Any:
    if _size(x) > MAX_VALUE:
        raise _refuse(what, MAX_VALUE)
    return x


def _check_estimate(estimate: int, what: str, limit: int = MAX_VALUE) -> None:
    if estimate > limit:
        raise _refuse(what, limit)


def _check_ints(args: Sequence[Any], kwargs: Mapping[str, Any], what: str) -> None:
    for v in (*args, *kwargs.values()):
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_VALUE:
            raise TemplateLimitError(f"chat template: {what} got the number {v}, beyond the "
                                     f"limit {MAX_VALUE}")
