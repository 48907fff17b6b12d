"""Collapsing functions B: a question's sampled texts -> semantic classes.

A collapsing function is any callable ``B(question, texts) -> Collapsed(labels, gold)``:
``labels[i]`` is the class of ``texts[i]`` (:data:`~semcal.types.NO_ANSWER` when nothing could
be extracted) and ``gold`` is the set of classes of the gold aliases, the paper's B_x(gold).

Built in (``get_collapse(name, **opts)``):

========== =========================================================================
exact      extracted final answer, normalised (case, accents, articles, punctuation)
math       extracted answer's exact value: "$1,200.00" == "1200", "0.75" == "\\frac{3}{4}"
embedding  sentence-embedding clustering of the extracted answers (needs ``[embed]``)
nli        bidirectional NLI entailment, Kuhn et al. 2023 (needs ``[hf]`` and ``model=``)
judge      a judge LM extracts a short answer, then exact/math match (needs ``sampler=``)
auto       math for questions with ``task == "math"``, exact otherwise
========== =========================================================================

A user-defined B is three lines::

    from semcal.types import NO_ANSWER, Collapsed
    def first_word(question, texts):
        return Collapsed(tuple(t.split()[0].lower() if t.split() else NO_ANSWER for t in texts),
                         frozenset(a.split()[0].lower() for a in question.answers))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from semcal.collapse.base import CollapseFn
from semcal.collapse.embedding import EmbeddingCollapse
from semcal.collapse.exact import ExactCollapse, MathCollapse, check_inputs
from semcal.collapse.extract import extract_answer
from semcal.collapse.judge import JudgeCollapse
from semcal.collapse.mathequiv import math_equal, math_label, math_value
from semcal.collapse.nli import NLICollapse
from semcal.collapse.normalize import contains_as_words, normalize_answer
from semcal.errors import InputError
from semcal.types import Collapsed, Question

COLLAPSE_NAMES = ("exact", "math", "embedding", "nli", "judge", "auto")


class AutoCollapse:
    """Math equivalence for ``task == "math"`` questions, normalised exact match otherwise."""

    name = "auto"

    def __init__(self, **opts: Any):
        math_opts = {k: v for k, v in opts.items() if k in ("sig_digits", "time_budget", "extract")}
        exact_opts = {k: v for k, v in opts.items() if k in ("accents", "use_question", "extract")}
        unknown = set(opts) - set(math_opts) - set(exact_opts)
        if unknown:
            raise InputError(f"unknown option(s) for the auto collapsing function: {sorted(unknown)}")
        self.math = MathCollapse(**math_opts)
        self.exact = ExactCollapse(**exact_opts)

    def __call__(self, question: Question, texts: Sequence[str]) -> Collapsed:
        check_inputs(question, texts)
        return (self.math if question.task == "math" else self.exact)(question, texts)

    def __repr__(self) -> str:
        return f"AutoCollapse({self.math!r}, {self.exact!r})"


def get_collapse(name: str, **opts: Any) -> CollapseFn:
    """A collapsing function by name (see the module docstring); ``opts`` go to its constructor.

    ``embedding``: model, encoder, threshold, device; ``nli``: model or relation, strict;
    ``judge``: sampler (required), max_tokens, cache_path; ``math``: sig_digits.
    """
    try:
        if name == "exact":
            return ExactCollapse(**opts)
        if name == "math":
            return MathCollapse(**opts)
        if name == "auto":
            return AutoCollapse(**opts)
        if name == "embedding":
            return EmbeddingCollapse(**opts)
        if name == "nli":
            return NLICollapse(**opts)
        if name == "judge":
            if "sampler" not in opts:
                raise InputError("the judge collapsing function needs sampler=<a semcal Sampler>")
            return JudgeCollapse(opts.pop("sampler"), **opts)
    except TypeError as exc:
        raise InputError(f"bad option for collapsing function {name!r}: {exc}") from None
    raise InputError(f"unknown collapsing function {name!r} (known: {', '.join(COLLAPSE_NAMES)})")


__all__ = [
    "COLLAPSE_NAMES", "AutoCollapse", "CollapseFn", "EmbeddingCollapse", "ExactCollapse",
    "JudgeCollapse", "MathCollapse", "NLICollapse",
    "contains_as_words", "extract_answer", "get_collapse", "math_equal", "math_label",
    "math_value", "normalize_answer",
]
