"""The sandboxed jinja environment with every hook bounded, and :class:`ChatTemplate`, one
compiled template rendered within the time limit and the output cap."""

from __future__ import annotations

import signal
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from semcal.backends.chat_template.bounded import (
    _BINOPS,
    _bounded_concat,
    _bounded_filter,
    _bounded_join,
    _bounded_lipsum,
    _bounded_range,
    _check_binop,
    _finalize,
    _method_estimate,
    _tojson,
)
from semcal.backends.chat_template.estimates import _texts_len
from semcal.backends.chat_template.limits import (
    LLAMA_CPP_VARIABLES,
    MAX_OUTPUT,
    MAX_VALUE,
    TIME_LIMIT,
    TemplateLimitError,
    _check_estimate,
    _check_ints,
    _check_size,
)
from semcal.backends.chat_template.meter import (
    _made,
    _materialized,
    _Render,
    _state,
    _tick,
    _ticking,
)
from semcal.errors import InputError


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
