"""The bounded versions of jinja's filters, methods, operators and globals: each measures
its input and estimates its result before it runs."""

from __future__ import annotations

import functools
import inspect
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from semcal.backends.chat_template.estimates import (
    _format_estimate,
    _join_estimate,
    _replace_estimate,
    _text_len,
    _texts_len,
)
from semcal.backends.chat_template.limits import (
    MAX_INT_BITS,
    MAX_LIPSUM,
    MAX_OUTPUT,
    MAX_RANGE,
    MAX_SLOW,
    MAX_TOTAL,
    MAX_VALUE,
    TemplateLimitError,
    _check_estimate,
    _check_ints,
    _refuse,
    _size,
)
from semcal.backends.chat_template.meter import _made, _materialized, _Metered, _tick

# ----------------------------------------------------------------------------- filters

#: filters that do Python-level work for each character or item of their input
_SLOW = frozenset({
    "pprint", "wordwrap", "urlize", "title", "urlencode", "xmlattr", "wordcount", "list",
    "unique", "sort", "dictsort", "groupby", "map", "select", "reject", "selectattr",
    "rejectattr", "batch", "slice", "min", "max", "sum",
})


def _lines(s: Any) -> int:
    return s.count("\n") + 1 if isinstance(s, str) else 1


def _words(s: Any) -> int:
    return s.count(" ") + s.count("\n") + 1 if isinstance(s, str) else 1


def _strlen(x: Any) -> int:
    return len(x) if isinstance(x, str) else 0


def _indent_estimate(a: Mapping[str, Any]) -> int:
    width = a["width"]
    w = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    return _strlen(a["s"]) + _lines(a["s"]) * max(w, 0)


def _wordwrap_estimate(a: Mapping[str, Any]) -> int:
    s, width = a["s"], a["width"]
    n = _strlen(s)
    breaks = min(n, n // max(width if isinstance(width, int) else 1, 1) + _words(s))
    return n + breaks * max(_strlen(a["wrapstring"]), 1)


def _urlize_estimate(a: Mapping[str, Any]) -> int:
    extra = 64 + _strlen(a["target"]) + _strlen(a["rel"])
    return 2 * _strlen(a["value"]) + _words(a["value"]) * extra


def _tojson_estimate(a: Mapping[str, Any]) -> int:
    units = _text_len(a["x"], MAX_VALUE)
    indent = a["indent"]
    extra = len(indent) if isinstance(indent, str) else indent if isinstance(indent, int) else 0
    seps = a["separators"]
    if isinstance(seps, (list, tuple)):
        extra += sum(_strlen(s) for s in seps)
    return 2 * units + units * max(extra, 0)


def _sum_estimate(a: Mapping[str, Any]) -> int:
    start, items = a["start"], a["iterable"]
    if not isinstance(start, (str, list, tuple)) or not isinstance(items, (list, tuple)):
        return 0
    total = _size(start) + sum(_size(i) for i in items)
    # each step copies everything summed so far: refuse what would take long
    if total * len(items) > MAX_TOTAL:
        raise TemplateLimitError("chat template: a sum of sequences would take too long")
    return total


def _slice_estimate(a: Mapping[str, Any]) -> int:
    slices = a["slices"]
    return _size(a["value"]) + (slices * 64 if isinstance(slices, int) else 0)


#: result-size estimates of the filters whose result can outgrow their input
_ESTIMATES: dict[str, Callable[[Mapping[str, Any]], int]] = {
    "indent": _indent_estimate,
    "format": lambda a: _format_estimate(a["value"], (*a["args"], *a["kwargs"].values()), "%"),
    "replace": lambda a: _replace_estimate(a["s"], a["old"], a["new"], a["count"]),
    "join": lambda a: _join_estimate(a["value"], a["d"]),
    "wordwrap": _wordwrap_estimate,
    "urlize": _urlize_estimate,
    "tojson": _tojson_estimate,
    "pprint": lambda a: 2 * _text_len(a["value"], MAX_VALUE),
    "sum": _sum_estimate,
    "slice": _slice_estimate,
}


#: names of the jinja objects (environment, context) some filters take first
_PASSED = ("environment", "env", "eval_ctx", "context")


def _plain_args(args: Sequence[Any]) -> Sequence[Any]:
    """``args`` without the leading jinja objects a filter receives before its value."""
    from jinja2.environment import Environment
    from jinja2.nodes import EvalContext
    from jinja2.runtime import Context

    k = 0
    while k < len(args) and isinstance(args[k], (Environment, EvalContext, Context)):
        k += 1
    return args[k:]


def _bounded_filter(name: str, fn: Any) -> Any:
    full = inspect.signature(fn)
    # bind the filter's own arguments by name (the jinja objects are dropped on both sides)
    signature = full.replace(
        parameters=[p for p in full.parameters.values() if p.name not in _PASSED])
    limit = MAX_SLOW if name in _SLOW else MAX_VALUE
    estimate = _ESTIMATES.get(name)

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _tick()
        args = _materialized(args)
        _check_ints(args, kwargs, f"the filter {name!r}")
        _check_estimate(_texts_len((*args, *kwargs.values()), limit),
                        f"the input of the filter {name!r}", limit)
        if estimate is not None:
            try:
                bound = signature.bind(*_plain_args(args), **kwargs)
            except TypeError:
                pass  # the filter itself reports the bad call
            else:
                bound.apply_defaults()
                _check_estimate(estimate(bound.arguments), f"the filter {name!r}")
        result = fn(*args, **kwargs)
        if inspect.isgenerator(result):
            return _Metered(result)
        return _made(result, f"the filter {name!r}")

    return wrapped


# ----------------------------------------------------------------------------- methods


def _method_estimate(name: str, owner: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """Result-size estimate of a string method that can outgrow its string (0: no concern)."""
    if not isinstance(owner, (str, bytes)):
        return 0
    if name == "replace" and len(args) >= 2:
        return _replace_estimate(owner, args[0], args[1], args[2] if len(args) > 2 else None)
    if name in ("format", "format_map"):
        return _format_estimate(owner, (*args, *kwargs.values()), "{")
    if name == "join" and args:
        return _join_estimate(args[0], owner)
    if name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        tab = "\t" if isinstance(owner, str) else b"\t"
        return len(owner) + owner.count(tab) * (size if isinstance(size, int) else 8)
    if name == "translate" and args and isinstance(args[0], Mapping):
        widest = max((_size(v) for v in args[0].values()), default=1)
        return len(owner) * max(widest, 1)
    if name in ("split", "rsplit", "splitlines"):
        _check_estimate(len(owner), f"a {name} of a string", MAX_SLOW)
    return 0


def _check_binop(op: str, left: Any, right: Any) -> None:
    if op == "*":
        for seq, n in ((left, right), (right, left)):
            if _size(seq) and isinstance(n, int) and _size(seq) * max(n, 0) > MAX_VALUE:
                raise _refuse("a product", MAX_VALUE)
        if isinstance(left, int) and isinstance(right, int) and (
            left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            raise TemplateLimitError(f"chat template: a product wider than {MAX_INT_BITS} bits")
    elif op == "%":
        if isinstance(left, str):
            _check_ints(right if isinstance(right, tuple) else (right,), {}, "a % format")
            values = right if isinstance(right, tuple) else (right,)
            _check_estimate(_format_estimate(left, values, "%"), "a % format")
    elif op == "**":
        if isinstance(right, (int, float)) and abs(right) > 64 and (
            isinstance(left, (int, float)) and abs(left) > 1
        ):
            raise TemplateLimitError("chat template: a power with a large exponent")
        if isinstance(left, int) and isinstance(right, int) and (
            left.bit_length() * max(right, 0) > MAX_INT_BITS
        ):
            raise TemplateLimitError(f"chat template: a power wider than {MAX_INT_BITS} bits")
    elif _size(left) + _size(right) > MAX_VALUE:
        raise _refuse("a sum", MAX_VALUE)


_BINOPS = {"*": operator.mul, "%": operator.mod, "**": operator.pow, "+": operator.add}


# ----------------------------------------------------------------------------- globals


def _bounded_range(*args: int) -> range:
    _check_ints(args, {}, "range")
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise TemplateLimitError(f"chat template: a range of more than {MAX_RANGE} items")
    return r


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    from jinja2.utils import generate_lorem_ipsum

    if any(isinstance(v, int) and v > MAX_LIPSUM for v in (n, min, max)):
        raise TemplateLimitError(
            f"chat template: lipsum of more than {MAX_LIPSUM} paragraphs or words")
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _finalize(value: Any) -> Any:
    # ``{{ value }}``: measure its text before jinja turns it into a string
    if not isinstance(value, str):
        _check_estimate(_text_len(value, MAX_OUTPUT), "an output value", MAX_OUTPUT)
    return value


def _bounded_join(pieces: Any) -> str:
    # captured output ({% set %} blocks, macros, filter blocks) joined into one string
    items = pieces if isinstance(pieces, list) else list(pieces)
    _tick()
    _check_estimate(sum(len(p) for p in items if isinstance(p, str)), "captured output")
    return _made("".join(items), "captured output")


def _bounded_concat(join: Any) -> Any:
    def concat(seq: Any) -> Any:
        items = list(seq)
        _tick()
        _check_estimate(_texts_len(items, MAX_VALUE), "a ~ concatenation")
        return _made(join(items), "a ~ concatenation")

    return concat
