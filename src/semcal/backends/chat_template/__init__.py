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

The package's rooms: ``limits`` (the bounds, :class:`TemplateLimitError` and the checks that
refuse a value), ``estimates`` (the size of a value's text and of what an operation would
build, before it runs), ``meter`` (one render's clock and running total), ``bounded`` (the
bounded filters, methods, operators and globals) and ``sandbox`` (the environment that wires
them into jinja's hooks, and :class:`ChatTemplate`).
"""

from __future__ import annotations

from semcal.backends.chat_template.limits import (
    LLAMA_CPP_VARIABLES,
    MAX_INT_BITS,
    MAX_LIPSUM,
    MAX_OUTPUT,
    MAX_RANGE,
    MAX_SLOW,
    MAX_TOTAL,
    MAX_VALUE,
    TIME_LIMIT,
    TemplateLimitError,
)
from semcal.backends.chat_template.sandbox import ChatTemplate

__all__ = [
    "LLAMA_CPP_VARIABLES",
    "MAX_INT_BITS",
    "MAX_LIPSUM",
    "MAX_OUTPUT",
    "MAX_RANGE",
    "MAX_SLOW",
    "MAX_TOTAL",
    "MAX_VALUE",
    "TIME_LIMIT",
    "ChatTemplate",
    "TemplateLimitError",
]
