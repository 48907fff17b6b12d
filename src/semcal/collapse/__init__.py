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
auto       the default: math or exact labels, gold-alias closure, containment merge
           (see :mod:`semcal.collapse.auto`); refusals are one class in every B
========== =========================================================================

A user-defined B is three lines::

    from semcal.types import NO_ANSWER, Collapsed
    def first_word(question, texts):
        return Collapsed(tuple(t.split()[0].lower() if t.split() else NO_ANSWER for t in texts),
                         frozenset(a.split()[0].lower() for a in question.answers))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from semcal.backends import get_sampler
from semcal.collapse.auto import AutoCollapse
from semcal.collapse.base import CollapseFn
from semcal.collapse.embedding import EmbeddingCollapse
from semcal.collapse.exact import ExactCollapse, MathCollapse
from semcal.collapse.extract import extract_answer
from semcal.collapse.judge import JudgeCollapse
from semcal.collapse.mathequiv import math_equal, math_label, math_value
from semcal.collapse.nli import NLICollapse
from semcal.collapse.normalize import contains_as_words, normalize_answer
from semcal.errors import InputError
from semcal.registry import Registry, needs_sampler

#: bumped whenever a built-in B changes the labels it gives, so that class labels cached in a
#: store by an older semcal are not reused (see :func:`collapse_key`)
COLLAPSE_VERSION = 6


def split_options(opts: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """A B's (or grader's) options as (judge sampler or None, the plain options): objects
    passed in as options (the judge's sampler, an encoder, an NLI relation: each part names
    its own in its registration's ``objects``) are no part of its name."""
    plain = dict(opts or {})
    sampler = plain.pop("sampler", None)
    for key in _object_options():
        plain.pop(key, None)
    return sampler, plain


def _object_options() -> set[str]:
    """Every option that some registered B or grader takes as an object, not a value."""
    from semcal.grade import GRADER_REGISTRY

    return {key for reg in (COLLAPSES, GRADER_REGISTRY) for name in reg
            for key in reg.meta(name).get("objects", ())}


def uses_judge(name: str) -> bool:
    """Whether the B ``name`` reads responses with a judge model (registered ``judge=True``)."""
    return COLLAPSES.flag(name, "judge")


def collapse_key(name: str, opts: dict[str, Any] | None = None) -> str:
    """The key under which a B's results are cached: name, :data:`COLLAPSE_VERSION`, the judge
    model and any plain options ("auto@2", "judge@2:smollm2", "embedding@2:{"threshold": 0.9}")."""
    sampler, plain = split_options(opts)
    key = f"{name}@{COLLAPSE_VERSION}"
    if sampler is not None:
        key += f":{sampler.model_name}"
    if plain:
        key += ":" + json.dumps(plain, sort_keys=True, default=str)
    return key


def open_judge(judge: Any) -> Any:
    """Open the judge model of a :class:`~semcal.spec.JudgeSpec` (a semcal Sampler)."""

    return get_sampler(judge.backend, judge.model, **judge.options())


def collapse_for(name: str, *, style: str | None = None, judge: Any = None, **opts: Any) -> CollapseFn:
    """The B ``name`` for a run of ``style``; for ``judge``, the judge model is opened from
    ``judge`` (a :class:`~semcal.spec.JudgeSpec`) unless ``opts`` holds a ``sampler``."""
    if uses_judge(name) and "sampler" not in opts:
        if judge is None:
            raise InputError("the judge collapsing function needs a judge model "
                             "(--judge-model, or a [judge] table in the spec)")
        opts["sampler"] = open_judge(judge)
    opts.setdefault("style", style)
    return get_collapse(name, **opts)


#: the collapsing functions by name (semcal.registry): register one here to add it
#: Metadata: ``parallel=True`` for a rule-based B (pure Python, deterministic, picklable
#: options) that the analysis may run in worker processes on a large run; ``objects``: the
#: options that are objects, not values (no part of the B's cache key); ``judge=True`` for a B
#: that needs a judge model (its ``sampler`` option, opened from ``--judge-model`` or the spec's
#: ``[judge]`` table); ``audit_against``: the B its audit compares it with by default.
COLLAPSES: Registry[Callable[..., CollapseFn]] = Registry("collapsing function")
COLLAPSES.register("exact", ExactCollapse, parallel=True)
COLLAPSES.register("math", MathCollapse, parallel=True)
COLLAPSES.register("embedding", EmbeddingCollapse, objects=("encoder",))
COLLAPSES.register("nli", NLICollapse, objects=("relation",))
COLLAPSES.register("judge", needs_sampler("collapsing function", JudgeCollapse),
                   objects=("sampler",), judge=True, audit_against="auto")
COLLAPSES.register("auto", AutoCollapse, parallel=True)


def get_collapse(name: str, **opts: Any) -> CollapseFn:
    """A collapsing function by name (see the module docstring); ``opts`` go to its constructor.

    ``embedding``: model, encoder, threshold, device; ``nli``: model or relation, strict;
    ``judge``: sampler (required), max_tokens, cache_path; ``math``: sig_digits. Every built-in
    B takes ``style`` (the run's response style: with "cot" only a stated final answer counts)
    and ``unmarked`` (what an unmarked reasoning response counts as: "none", "last_number",
    "first_sentence").
    """
    return COLLAPSES.create(name, **opts)


__all__ = [
    "COLLAPSES", "COLLAPSE_VERSION", "AutoCollapse", "CollapseFn", "EmbeddingCollapse", "ExactCollapse",
    "JudgeCollapse", "MathCollapse", "NLICollapse",
    "collapse_for", "collapse_key", "split_options", "contains_as_words", "extract_answer", "get_collapse", "math_equal", "math_label",
    "math_value", "normalize_answer", "open_judge", "uses_judge",
]
