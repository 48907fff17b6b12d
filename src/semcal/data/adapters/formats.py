"""The registry of formats (:data:`ADAPTERS`): :class:`Adapter`, :func:`register_adapter`,
the built-in formats with their detectors, :func:`get_adapter` and :func:`detect_adapter`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from semcal.data.adapters.fields import Parsed, Row, _maybe_json_object, norm_key
from semcal.data.adapters.parsers import (
    _gsm8k,
    _math500,
    _nq_open,
    _openmathinstruct2,
    _simpleqa,
    _triviaqa,
    _truthfulqa,
    make_custom,
)
from semcal.errors import InputError
from semcal.registry import Registry


@dataclass(frozen=True)
class Adapter:
    """A named question-set format."""

    name: str
    task: str | None  # None: per row (custom), defaulting to "qa"
    parse: Callable[[Row, str], Parsed]
    description: str
    #: (hub id, config, split) used for ``load_questions("hf:<name>")``
    hub: tuple[str, str | None, str] | None = None


# ----------------------------------------------------------------------------- registry

#: where a format registered without an ``order`` is tried by :func:`detect_adapter`: after
#: every built-in detector (give a smaller order to be tried before them)
DEFAULT_DETECT_ORDER = 100

#: every question-set format, by name. Metadata of a registration (see :func:`register_adapter`):
#: ``aliases`` (other names :func:`get_adapter` accepts), ``detect`` (``(Row) -> bool``: does a
#: file whose first row is this one hold this format?) and ``order`` (detectors run by increasing
#: order). ``custom`` has no detector: it is what a row no detector claims is read as.
ADAPTERS: Registry[Adapter] = Registry("question format")


def register_adapter(
    adapter: Adapter,
    *,
    aliases: tuple[str, ...] = (),
    detect: Callable[[Row], bool] | None = None,
    order: int = DEFAULT_DETECT_ORDER,
) -> Adapter:
    """Add (or replace) a format under ``adapter.name``; then ``format=<name>`` (and
    ``--format <name>``) reads it, and a file is detected as it when ``detect(first row)``."""
    return ADAPTERS.register(adapter.name, adapter, aliases=tuple(aliases), detect=detect,
                             order=order)


def _has(row: Row, *names: str) -> bool:
    cols = row.columns()
    return all(norm_key(n) in cols for n in names)


def _single_answer(row: Row) -> Any:
    """The decoded ``answer`` of a question/answer row with no ``answers`` column, else None."""
    if _has(row, "question", "answer") and not _has(row, "answers"):
        return _maybe_json_object(row.get("answer"))
    return None


def _looks_gsm8k(row: Row) -> bool:
    answer = _single_answer(row)
    return isinstance(answer, str) and re.search(r"####\s*\S", answer) is not None


_BUILT_IN: tuple[tuple[Adapter, tuple[str, ...], Callable[[Row], bool] | None, int], ...] = (
    (Adapter("triviaqa", "qa", _triviaqa, "TriviaQA (rc.nocontext)",
             ("mandarjoshi/trivia_qa", "rc.nocontext", "validation")),
     ("trivia_qa",), lambda r: isinstance(_single_answer(r), Mapping), 50),
    (Adapter("simpleqa", "qa", _simpleqa, "SimpleQA (problem/answer/metadata)",
             ("basicv8vc/SimpleQA", None, "test")),
     ("simple_qa",), lambda r: _has(r, "problem", "answer", "metadata"), 30),
    (Adapter("gsm8k", "math", _gsm8k, "GSM8K (answer ends with '#### n')",
             ("openai/gsm8k", "main", "test")),
     ("gsm_8k",), _looks_gsm8k, 60),
    (Adapter("openmathinstruct2", "math", _openmathinstruct2,
             "OpenMathInstruct-2 (problem/expected_answer)",
             ("nvidia/OpenMathInstruct-2", None, "train_1M")),
     ("openmathinstruct", "openmathinstruct_2", "omi2"),
     lambda r: _has(r, "problem", "expected_answer"), 10),
    (Adapter("math500", "math", _math500, "MATH-500 (problem/solution/answer, \\boxed{})",
             ("HuggingFaceH4/MATH-500", None, "test")),
     ("math_500",), lambda r: _has(r, "problem", "solution"), 20),
    (Adapter("truthfulqa", "qa", _truthfulqa,
             "TruthfulQA generation (question/best_answer/correct_answers)",
             ("truthfulqa/truthful_qa", "generation", "validation")),
     ("truthful_qa",),
     lambda r: _has(r, "question") and (_has(r, "best_answer") or _has(r, "correct_answers")),
     40),
    (Adapter("nq_open", "qa", _nq_open, "NQ-open (question, answer list)",
             ("google-research-datasets/nq_open", "nq_open", "validation")),
     ("nq", "nqopen", "natural_questions"),
     lambda r: isinstance(_single_answer(r), (list, tuple)), 70),
    (Adapter("custom", None, make_custom(), "any JSONL/CSV/Parquet with question/answer(s)"),
     (), None, DEFAULT_DETECT_ORDER),
)

for _adapter, _aliases, _detect, _order in _BUILT_IN:
    register_adapter(_adapter, aliases=_aliases, detect=_detect, order=_order)


def get_adapter(name: str) -> Adapter:
    """The format called ``name`` or one of its aliases (compared like column names, so
    ``"TriviaQA"`` and ``"trivia_qa"`` are ``triviaqa``); asks the registry as it is now."""
    key = norm_key(name)
    names = list(ADAPTERS)
    for registered in names:  # a registered name wins over another format's alias
        if norm_key(registered) == key:
            return ADAPTERS[registered]
    for registered in names:
        if key in {norm_key(a) for a in ADAPTERS.meta(registered).get("aliases", ())}:
            return ADAPTERS[registered]
    raise InputError(f"unknown question format {name!r} (known: {', '.join(names)})")


def detect_adapter(row: Mapping[str, Any]) -> Adapter:
    """Guess the format of a question set from its first row: the first registered detector
    (by ``order``, then registration) that claims the row, else ``custom``."""
    r = Row(row, "")
    orders = {name: ADAPTERS.meta(name).get("order", DEFAULT_DETECT_ORDER) for name in ADAPTERS}
    for name in sorted(orders, key=orders.__getitem__):
        detect = ADAPTERS.meta(name).get("detect")
        if detect is not None and detect(r):
            return ADAPTERS[name]
    return ADAPTERS.lookup("custom")
