"""Chat templates from model files, rendered with bounds on memory and time.

A GGUF's chat template is untrusted jinja. jinja2's sandbox stops code execution (attribute
access to internals, unsafe callables) but not resource exhaustion:
``{% set x = 'A' * 1000000000 %}{{ x }}`` passes it and grows to gigabytes. Here the sandbox
is tightened so that one render can neither allocate a huge value nor run for long:

* ``*``, ``**`` and ``+`` are checked *before* they run: a string or list product or sum
  longer than :data:`MAX_VALUE`, or a power with a large exponent, is refused;
* calls (methods and globals such as ``range``) and filters are refused when an integer
  argument exceeds :data:`MAX_VALUE` (``'x'.center(10**9)``, ``'x'|indent(10**9)``), a
  ``replace`` could grow past the limit, or their result is over the limit;
* values read from variables, attributes and items are checked too (a namespace doubled in
  a loop stops at the limit), ``range`` is capped at :data:`MAX_RANGE` items;
* the output is produced piece by piece and capped at :data:`MAX_OUTPUT` characters;
* a render taking longer than :data:`TIME_LIMIT` seconds is stopped (checked at every
  sandbox hook and output piece, and by a SIGALRM timer when rendering on the main thread,
  which also stops loops that touch no hook).

A violation raises :class:`TemplateLimitError` (an :class:`~semcal.errors.InputError`), one
line naming the limit. The environment matches llama-cpp-python's ``Jinja2ChatFormatter``
(``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``, a pass-through ``{% generation %}``
tag, ``tojson`` as in transformers, ``raise_exception``, ``strftime_now``), so templates
render to the same text.
"""

from __future__ import annotations

import json
import operator
import re
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from semcal.errors import InputError

#: longest string, list or mapping a template may build (characters / items)
MAX_VALUE = 1 << 22
#: longest rendered prompt (characters)
MAX_OUTPUT = 1 << 22
#: most items one ``range`` may give
MAX_RANGE = 100_000
#: seconds one render may take
TIME_LIMIT = 2.0


class TemplateLimitError(InputError):
    """A chat template went past a memory or time bound while rendering."""


def _size(x: Any) -> int:
    if isinstance(x, (str, bytes, list, tuple, dict, set, frozenset)):
        return len(x)
    return 0


def _check_size(x: Any, what: str) -> Any:
    if _size(x) > MAX_VALUE:
        raise TemplateLimitError(
            f"chat template: {what} would hold more than {MAX_VALUE} characters or items"
        )
    return x


def _check_ints(args: Sequence[Any], kwargs: Mapping[str, Any], what: str) -> None:
    for v in (*args, *kwargs.values()):
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_VALUE:
            raise TemplateLimitError(f"chat template: {what} got the number {v}, beyond the "
                                     f"limit {MAX_VALUE}")


def _check_replace(obj: Any, args: Sequence[Any]) -> None:
    # s.replace(old, new): up to len(s) / max(len(old), 1) + 1 copies of new
    if isinstance(obj, str) and len(args) >= 2 and isinstance(args[0], str) and isinstance(
        args[1], str
    ):
        copies = len(obj) // max(len(args[0]), 1) + 1
        if len(obj) + copies * len(args[1]) > MAX_VALUE:
            raise TemplateLimitError(
                f"chat template: a replace could hold more than {MAX_VALUE} characters"
            )


_DIGITS = re.compile(r"\d+")


def _check_format(fmt: Any) -> None:
    # a width or precision written in the format string itself ('%1000000000s', '{:>1e9}')
    if isinstance(fmt, str):
        for m in _DIGITS.finditer(fmt):
            if len(m.group()) > 7 or int(m.group()) > MAX_VALUE:
                raise TemplateLimitError(
                    f"chat template: a format width {m.group()} beyond the limit {MAX_VALUE}")


def _check_join(items: Any, sep: Any = "") -> None:
    if isinstance(items, (list, tuple)):
        total = sum(_size(x) if isinstance(x, str) else 0 for x in items)
        total += _size(sep) * max(len(items) - 1, 0)
        if total > MAX_VALUE:
            raise TemplateLimitError(
                f"chat template: a join would hold more than {MAX_VALUE} characters")


class _Clock:
    def __init__(self, limit: float) -> None:
        self.deadline = time.monotonic() + limit
        self.limit = limit

    def check(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(f"chat template: rendering took longer than {self.limit:g} s")


_clock = threading.local()


def _tick() -> None:
    c = getattr(_clock, "current", None)
    if c is not None:
        c.check()


def _make_env() -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Generation(jinja2.ext.Extension):
        """Pass-through for the ``{% generation %}`` tag of some chat templates."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            parser.stream.skip(1)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    class BoundedSandbox(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset({"*", "**", "+", "%"})

        def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
            _tick()
            if op == "*":
                for seq, n in ((left, right), (right, left)):
                    if _size(seq) and isinstance(n, int) and _size(seq) * max(n, 0) > MAX_VALUE:
                        raise TemplateLimitError(
                            f"chat template: a product would hold more than {MAX_VALUE} "
                            "characters or items"
                        )
                return _check_size(left * right, "a product")
            if op == "%":
                if isinstance(left, str):
                    _check_format(left)
                    _check_ints(right if isinstance(right, tuple) else (right,), {}, "a % format")
                return _check_size(left % right, "a % format")
            if op == "**":
                if isinstance(right, (int, float)) and abs(right) > 64 and (
                    isinstance(left, (int, float)) and abs(left) > 1
                ):
                    raise TemplateLimitError("chat template: a power with a large exponent")
                return operator.pow(left, right)
            if _size(left) + _size(right) > MAX_VALUE:
                raise TemplateLimitError(
                    f"chat template: a sum would hold more than {MAX_VALUE} characters or items"
                )
            return left + right

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
            _tick()
            _check_ints(args, kwargs, "a call")
            name = getattr(__obj, "__name__", "")
            # str.format reaches here wrapped by jinja's sandbox (the string is then the
            # wrapped bound method's __self__)
            owner = getattr(__obj, "__self__", None)
            if owner is None:
                owner = getattr(getattr(__obj, "__wrapped__", None), "__self__", None)
            if name == "replace":
                _check_replace(owner, args)
            elif name in ("format", "format_map"):
                _check_format(owner)
            elif name == "join" and args:
                _check_join(args[0], owner)
            return _check_size(super().call(__context, __obj, *args, **kwargs), "a call's result")

        def getattr(self, obj: Any, attribute: str) -> Any:
            _tick()
            return _check_size(super().getattr(obj, attribute), "a value")

        def getitem(self, obj: Any, argument: Any) -> Any:
            _tick()
            return _check_size(super().getitem(obj, argument), "a value")

    def bounded_range(*args: int) -> range:
        _check_ints(args, {}, "range")
        r = range(*args)
        if len(r) > MAX_RANGE:
            raise TemplateLimitError(f"chat template: a range of more than {MAX_RANGE} items")
        return r

    def tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
               separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    env = BoundedSandbox(
        loader=jinja2.BaseLoader(), trim_blocks=True, lstrip_blocks=True,
        extensions=[_Generation, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = tojson
    for name, fn in list(env.filters.items()):
        env.filters[name] = _bounded_filter(name, fn)
    env.globals["range"] = bounded_range
    return env


def _bounded_filter(name: str, fn: Any) -> Any:
    import functools

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _tick()
        _check_ints(args, kwargs, f"the filter {name!r}")
        strs = [a for a in args if isinstance(a, str)]
        if name == "replace" and len(strs) >= 3:  # (value, old, new), maybe after eval_ctx
            _check_replace(strs[0], strs[1:3])
        elif name == "format" and strs:
            _check_format(strs[0])
        elif name == "join":
            for a in args:
                if isinstance(a, (list, tuple)):
                    _check_join(a, strs[0] if strs else kwargs.get("d", ""))
        return _check_size(fn(*args, **kwargs), f"the filter {name!r}")

    return wrapped


def _bounded_concat(join: Any) -> Any:
    def concat(seq: Any) -> Any:
        items = list(seq)
        total = sum(_size(x) if isinstance(x, str) else 0 for x in items)
        if total > MAX_VALUE:
            raise TemplateLimitError(
                f"chat template: a ~ concatenation would hold more than {MAX_VALUE} characters")
        _tick()
        return _check_size(join(items), "a ~ concatenation")

    return concat


class ChatTemplate:
    """One compiled chat template; :meth:`render` turns messages into the prompt text."""

    def __init__(self, template: str, *, bos_token: str = "", eos_token: str = "",
                 time_limit: float = TIME_LIMIT) -> None:
        import jinja2

        if len(template) > MAX_VALUE:
            raise TemplateLimitError(f"chat template: longer than {MAX_VALUE} characters")
        try:
            self._template = _make_env().from_string(template)
        except jinja2.TemplateError as exc:
            raise InputError(f"chat template does not parse: {exc}") from None
        # `a ~ b ~ ...` compiles to a join of its operands: bound it like any other join
        namespace = self._template.root_render_func.__globals__
        for fn_name in ("str_join", "markup_join"):
            if fn_name in namespace:
                namespace[fn_name] = _bounded_concat(namespace[fn_name])
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.time_limit = float(time_limit)

    def render(self, messages: Sequence[Mapping[str, str]], *,
               add_generation_prompt: bool = True) -> str:
        def raise_exception(message: str) -> None:
            raise ValueError(message)

        def strftime_now(f: str) -> str:
            return datetime.now().strftime(f)

        clock = _Clock(self.time_limit)
        previous = getattr(_clock, "current", None)
        _clock.current = clock
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
            parts: list[str] = []
            total = 0
            for piece in self._template.generate(
                messages=list(messages), bos_token=self.bos_token, eos_token=self.eos_token,
                add_generation_prompt=add_generation_prompt, raise_exception=raise_exception,
                strftime_now=strftime_now, functions=None, function_call=None, tools=None,
                tool_choice=None,
            ):
                total += len(piece)
                if total > MAX_OUTPUT:
                    raise TemplateLimitError(
                        f"chat template: the rendered prompt is longer than {MAX_OUTPUT} characters")
                parts.append(piece)
                clock.check()
            return "".join(parts)
        except MemoryError:
            raise TemplateLimitError("chat template: rendering ran out of memory") from None
        finally:
            if alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old_handler)
            _clock.current = previous
