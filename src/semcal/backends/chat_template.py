"""Chat templates from model files, rendered with bounds on memory and time.

A GGUF's chat template is untrusted jinja. jinja2's sandbox stops code execution (attribute
access to internals, unsafe callables) but not resource exhaustion:
``{% set x = 'A' * 1000000000 %}{{ x }}`` passes it and grows to gigabytes. Here the sandbox
is tightened so that one render can neither allocate a huge value nor run for long. The rule
is that whatever could build a large value is refused *before* it runs, from an estimate of
the size of its result, because a single long builtin call (a ``str(list)``, a
``json.dumps``, a ``textwrap``) cannot be interrupted once started:

* ``*``, ``**``, ``+``, ``%`` and ``~`` are checked before they run: a string or list
  longer than :data:`MAX_VALUE`, an integer wider than :data:`MAX_INT_BITS` bits, or a
  ``%``-format whose fields could expand past the limit, is refused;
* every filter and call first measures its arguments by the length of their text form
  (a walk over containers that stops as soon as the limit is passed, so ``[s] * 4000000``
  costs one step, not 16 TB): over :data:`MAX_VALUE` (:data:`MAX_SLOW` for filters that do
  Python work per character or item, such as ``wordwrap`` or ``sort``) is refused. Filters
  and methods whose result can outgrow their input by an argument (``indent``, ``format``,
  ``replace``, ``join``, ``wordwrap``, ``tojson``, ``sum``, ``expandtabs``, ...) estimate
  their result first, and an integer argument over :data:`MAX_VALUE` is refused;
* ``{{ value }}`` estimates the text of ``value`` before it is turned into a string;
  the output is produced piece by piece and capped at :data:`MAX_OUTPUT` characters, and
  captured output (``{% set %}`` blocks, macros) is capped at :data:`MAX_VALUE`;
* all the values a render builds add up to at most :data:`MAX_TOTAL` characters or items
  (a loop that makes a new 4 MB string each turn stops), generators that filters return
  are metered item by item, ``range`` gives at most :data:`MAX_RANGE` items and
  ``lipsum`` at most :data:`MAX_LIPSUM` paragraphs;
* a render taking longer than :data:`TIME_LIMIT` seconds is stopped: the clock is read at
  every sandbox hook, every loop step and output piece, on any thread; on the main thread
  a SIGALRM timer backs it up.

A violation raises :class:`TemplateLimitError` (an :class:`~semcal.errors.InputError`), one
line naming the limit. The environment matches llama-cpp-python's ``Jinja2ChatFormatter``
and transformers' ``apply_chat_template`` (``trim_blocks``, ``lstrip_blocks``,
``loopcontrols``, a pass-through ``{% generation %}`` tag, ``tojson`` as in transformers,
``raise_exception``, ``strftime_now``), so templates render to the same text.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import operator
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
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


# ----------------------------------------------------------------------------- estimates

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


# ----------------------------------------------------------------------------- render state


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


# ----------------------------------------------------------------------------- environment


def _make_env() -> Any:
    import jinja2
    import jinja2.ext
    from jinja2 import nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Generation(jinja2.ext.Extension):
        """Pass-through for the ``{% generation %}`` tag of some chat templates."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(_BINOPS)
        concat = staticmethod(_bounded_join)

        def _parse(self, source: str, name: str | None, filename: str | None) -> Any:
            # every {% for %} iterates through _ticking, which reads the clock at each step
            tree = super()._parse(source, name, filename)
            for loop in tree.find_all(nodes.For):
                loop.iter = nodes.Filter(loop.iter, "_semcal_loop", [], [], None, None,
                                         lineno=loop.lineno)
            return tree

        def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
            _tick()
            _check_binop(op, left, right)
            return _made(_BINOPS[op](left, right), f"a {op} of two values")

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            _tick()
            args = _materialized(args)
            _check_ints(args, kwargs, "a call")
            _check_estimate(_texts_len((*args, *kwargs.values()), MAX_VALUE),
                            "the arguments of a call")
            name = getattr(__obj, "__name__", "")
            # str.format reaches here wrapped by jinja's sandbox (the string is then the
            # wrapped bound method's __self__)
            owner = getattr(__obj, "__self__", None)
            if owner is None:
                owner = getattr(getattr(__obj, "__wrapped__", None), "__self__", None)
            _check_estimate(_method_estimate(name, owner, args, kwargs), f"a call of {name!r}")
            return _made(super().call(__context, __obj, *args, **kwargs), "a call's result")

        def getattr(self, obj: Any, attribute: str) -> Any:
            _tick()
            return _check_size(super().getattr(obj, attribute), "a value")

        def getitem(self, obj: Any, argument: Any) -> Any:
            _tick()
            return _check_size(super().getitem(obj, argument), "a value")

    env = BoundedSandbox(
        loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True,
        extensions=[_Generation, jinja2.ext.loopcontrols], finalize=_finalize,
    )
    env.filters["tojson"] = _tojson
    for name, fn in list(env.filters.items()):
        env.filters[name] = _bounded_filter(name, fn)
    env.filters["_semcal_loop"] = _ticking
    env.globals["range"] = _bounded_range
    env.globals["lipsum"] = _bounded_lipsum
    return env


def _ticking_loop_context() -> Any:
    from jinja2.runtime import LoopContext

    class TickingLoop(LoopContext):
        """jinja's loop object, reading the clock at each step (recursive loops too)."""

        def __next__(self) -> Any:
            _tick()
            return super().__next__()

    return TickingLoop


class ChatTemplate:
    """One compiled chat template; :meth:`render` turns messages into the prompt text.

    ``variables`` are the template variables besides ``messages``,
    ``add_generation_prompt``, ``bos_token`` and ``eos_token`` (default: those
    llama-cpp-python passes, :data:`LLAMA_CPP_VARIABLES`).
    """

    def __init__(self, template: str, *, bos_token: str = "", eos_token: str = "",
                 time_limit: float = TIME_LIMIT,
                 variables: Mapping[str, Any] | None = None) -> None:
        import jinja2

        if len(template) > MAX_VALUE:
            raise TemplateLimitError(f"chat template: longer than {MAX_VALUE} characters")
        # jinja evaluates constant expressions while compiling: bound them like a render
        previous = getattr(_state, "current", None)
        _state.current = _Render(time_limit)
        try:
            self._template = _make_env().from_string(template)
        except jinja2.TemplateError as exc:
            raise InputError(f"chat template does not parse: {exc}") from None
        finally:
            _state.current = previous
        # `a ~ b ~ ...` compiles to a join of its operands: bound it like any other join
        namespace = self._template.root_render_func.__globals__
        for fn_name in ("str_join", "markup_join"):
            if fn_name in namespace:
                namespace[fn_name] = _bounded_concat(namespace[fn_name])
        namespace["LoopContext"] = _ticking_loop_context()
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.variables = dict(LLAMA_CPP_VARIABLES if variables is None else variables)
        self.time_limit = float(time_limit)

    def render(self, messages: Sequence[Mapping[str, str]], *,
               add_generation_prompt: bool = True) -> str:
        def raise_exception(message: str) -> None:
            raise ValueError(message)

        def strftime_now(f: str) -> str:
            if isinstance(f, str):
                _check_estimate(len(f) + f.count("%") * 64, "a strftime_now format")
            return datetime.now().strftime(f)

        state = _Render(self.time_limit)
        previous = getattr(_state, "current", None)
        _state.current = state
        # the SIGALRM backstop only on the main thread and only when no one else's timer runs
        alarm = (threading.current_thread() is threading.main_thread()
                 and hasattr(signal, "setitimer")
                 and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
        old_handler: Any = None
        if alarm:
            def on_alarm(signum: int, frame: Any) -> None:
                raise TemplateLimitError(
                    f"chat template: rendering took longer than {self.time_limit:g} s")

            old_handler = signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.time_limit + 0.5)
        try:
            variables = {"bos_token": self.bos_token, "eos_token": self.eos_token,
                         **self.variables}
            parts: list[str] = []
            total = 0
            for piece in self._template.generate(
                **variables, messages=list(messages), add_generation_prompt=add_generation_prompt,
                raise_exception=raise_exception, strftime_now=strftime_now,
            ):
                total += len(piece)
                if total > MAX_OUTPUT:
                    raise TemplateLimitError(
                        f"chat template: the rendered prompt is longer than {MAX_OUTPUT} characters")
                parts.append(piece)
                state.check()
            return "".join(parts)
        except MemoryError:
            raise TemplateLimitError("chat template: rendering ran out of memory") from None
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old_handler)
            _state.current = previous
