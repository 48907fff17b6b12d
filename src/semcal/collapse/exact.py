"""Collapsing functions that label each text on its own: normalised exact match and math.

Both are *per-text* B's: the label of a response is a function of (question, response) alone,
so the classes are an equivalence relation whatever else was sampled. That makes them cheap,
deterministic and safe to re-run on stored samples.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from semcal.collapse.extract import (
    DEFAULT_UNMARKED,
    DIRECT_STYLES,
    UNMARKED_RULES,
    check_disabled,
    extract_answer,
)
from semcal.collapse.mathequiv import DEFAULT_TIME_BUDGET, math_label
from semcal.collapse.normalize import normalize_answer
from semcal.collapse.spans import NUMBER_RE, expects_name, is_refusal, names_something
from semcal.errors import InputError
from semcal.prompts.styles import STYLES
from semcal.types import NO_ANSWER, REFUSAL, Collapsed, Question

log = logging.getLogger(__name__)


def check_inputs(question: Question, texts: Sequence[str]) -> list[str]:
    """Validate the arguments of a B; returns ``texts`` as a list."""
    if not isinstance(question, Question):
        raise InputError(f"a collapsing function needs a Question, got {type(question).__name__}")
    if isinstance(texts, str):
        raise InputError("texts must be a sequence of strings, not one string",
                         where=f"question {question.id!r}")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InputError(f"text {i} is {type(t).__name__}, not str", where=f"question {question.id!r}")
    return out


def check_style(style: str | None, unmarked: str) -> None:
    """Validate the ``style`` / ``unmarked`` options every built-in B takes."""
    if style is not None and style not in STYLES:
        raise InputError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    if unmarked not in UNMARKED_RULES:
        raise InputError(f"unmarked must be one of {', '.join(UNMARKED_RULES)}, got {unmarked!r}")


def short_answers(
    question: Question, texts: Sequence[str], extract: bool = True, *,
    style: str | None = None, unmarked: str = DEFAULT_UNMARKED,
) -> tuple[list[str], dict[str, int]]:
    """Each text's normalised short answer (``NO_ANSWER`` if none, ``REFUSAL`` for a refusal)
    and the counts of the real answers in first-seen order: the common first step of the
    clustering Bs."""
    answers = []
    for t in check_inputs(question, texts):
        if extract and is_refusal(t):
            answers.append(REFUSAL)
            continue
        span = (extract_answer(t, question.task, question=question.question, style=style,
                               unmarked=unmarked) if extract else t)
        answers.append(NO_ANSWER if span is None else (normalize_answer(span) or NO_ANSWER))
    counts: dict[str, int] = {}
    for a in answers:
        if a not in (NO_ANSWER, REFUSAL):
            counts[a] = counts.get(a, 0) + 1
    return answers, counts


class ExactCollapse:
    """Normalised exact match (SQuAD/TriviaQA style): extract the final answer, normalise it.

    Two responses share a class iff their normalised extracted answers are equal; the label
    *is* that normalised string ("paris"). Gold aliases are normalised the same way.

    Options: ``extract`` (default True) runs :func:`~semcal.collapse.extract.extract_answer`
    first (False: normalise the whole text, for already-short answers); ``accents`` (default
    False) keeps accents when True; ``use_question`` (default True) lets extraction cut a
    one-sentence reply at its copula using the question ("The capital of France is Paris.").
    ``style`` (the run's response style; ``"cot"``: only an explicitly stated final answer
    counts) and ``unmarked`` (what an unmarked reasoning response counts as: ``"none"``,
    ``"last_number"`` or ``"first_sentence"``) are passed to the extraction. A response that
    declines to answer is labelled :data:`~semcal.types.REFUSAL`. ``names`` (default False):
    for a direct answer (``style`` "concise" or "sentence") to a question whose gold aliases
    are all names (:func:`~semcal.collapse.spans.expects_name`), a reply that names nothing
    (:func:`~semcal.collapse.spans.names_something`: "a city/region", "the ocean") is
    :data:`~semcal.types.NO_ANSWER`. ``disabled``: extraction rules switched off by name
    (:data:`~semcal.collapse.extract.RULES`; responses only, gold aliases are read by every
    rule), for measuring what each rule is worth (``bench/collapse.py --ablate``).
    """

    name = "exact"
    #: the task whose extraction rules apply (None: the question's own task)
    task: str | None = None

    def __init__(self, *, extract: bool = True, accents: bool = False, use_question: bool = True,
                 style: str | None = None, unmarked: str = DEFAULT_UNMARKED, names: bool = False,
                 disabled: Iterable[str] | str = ()):
        check_style(style, unmarked)
        self.disabled = check_disabled(disabled)
        self.extract = extract
        self.accents = accents
        self.use_question = use_question
        self.style = style
        self.unmarked = unmarked
        self.names = bool(names)

    def span(self, question: Question, text: str) -> str | None:
        """The extracted answer span of one response, :data:`REFUSAL`, or None."""
        if not self.extract:
            return text
        if is_refusal(text):
            return REFUSAL
        return extract_answer(text, self.task or question.task, style=self.style, unmarked=self.unmarked,
                              question=question.question if self.use_question else None,
                              disabled=self.disabled)

    def label(self, question: Question, text: str) -> str:
        """The class label of one response."""
        span = self.span(question, text)
        if span == REFUSAL:
            return REFUSAL
        if span is None:
            return NO_ANSWER
        if (self.names and question.task != "math" and self.style in DIRECT_STYLES
                and expects_name(question.answers)
                and not names_something(span, text)):
            return NO_ANSWER
        return normalize_answer(span, accents=self.accents) or NO_ANSWER

    def gold_label(self, question: Question, alias: str) -> str:
        """The class label of one gold alias (aliases are short: normalised, not extracted)."""
        return normalize_answer(alias, accents=self.accents) or NO_ANSWER

    def labels(self, question: Question, texts: Sequence[str]) -> list[str]:
        """:meth:`label` of each text; equal texts (common among M samples) are read once."""
        seen: dict[str, str] = {}
        out = []
        for t in texts:
            lab = seen.get(t)
            if lab is None:
                lab = seen[t] = self.label(question, t)
            out.append(lab)
        return out

    def __call__(self, question: Question, texts: Sequence[str]) -> Collapsed:
        texts = check_inputs(question, texts)
        labels = tuple(self.labels(question, texts))
        gold = frozenset(g for g in (self.gold_label(question, a) for a in question.answers) if g != NO_ANSWER)
        return Collapsed(labels=labels, gold=gold)

    def __repr__(self) -> str:
        return (f"ExactCollapse(extract={self.extract}, accents={self.accents}, "
                f"use_question={self.use_question}, style={self.style!r}, unmarked={self.unmarked!r}, "
                f"names={self.names}{self._disabled_repr()})")

    def _disabled_repr(self) -> str:
        return f", disabled={tuple(sorted(self.disabled))}" if self.disabled else ""


class MathCollapse(ExactCollapse):
    """Math equivalence: the extracted answer's canonical value (see :mod:`.mathequiv`).

    "$1,200.00", "1200" and "1,200 dollars" share the label "1200"; "0.75", "3/4" and
    "\\frac{3}{4}" share "3/4". An answer the safe parser cannot read falls back to its last
    number, and then to its normalised text, so it still gets a stable class.
    ``sig_digits`` (default None: exact) labels every number by that many significant digits.
    """

    name = "math"
    task = "math"

    def __init__(self, *, extract: bool = True, sig_digits: int | None = None,
                 time_budget: float = DEFAULT_TIME_BUDGET, style: str | None = None,
                 unmarked: str = DEFAULT_UNMARKED, disabled: Iterable[str] | str = ()):
        super().__init__(extract=extract, style=style, unmarked=unmarked, disabled=disabled)
        if sig_digits is not None and (not isinstance(sig_digits, int) or not 1 <= sig_digits <= 30):
            raise InputError(f"sig_digits must be an integer from 1 to 30, got {sig_digits!r}")
        self.sig_digits = sig_digits
        self.time_budget = time_budget

    def canonical(self, span: str) -> str:
        """The label of an already extracted answer span."""
        # "3 × 10⁸ m/s", "100 km²": a number followed by its unit is the number, not a product
        # with variables m and s or a square of 100
        number = _number_before_unit(span)
        got = None
        if number is not None:
            got = math_label(number, sig_digits=self.sig_digits, time_budget=self.time_budget)
        if got is None:
            got = math_label(span, sig_digits=self.sig_digits, time_budget=self.time_budget)
        if got is not None:
            return got
        last = None
        for m in NUMBER_RE.finditer(span[:2000]):
            last = m
        if last is not None:
            got = math_label(last.group(0), sig_digits=self.sig_digits, time_budget=self.time_budget)
            if got is not None:
                return got
        return normalize_answer(span) or NO_ANSWER

    def label(self, question: Question, text: str) -> str:
        span = self.span(question, text)
        if span is None or span == REFUSAL:
            return NO_ANSWER if span is None else REFUSAL
        return self.canonical(span)

    def gold_label(self, question: Question, alias: str) -> str:
        got = math_label(alias, sig_digits=self.sig_digits, time_budget=self.time_budget)
        if got is not None:
            return got
        span = extract_answer(alias, "math")  # e.g. a GSM8K solution ending in "#### 42"
        return self.canonical(span) if span is not None else NO_ANSWER

    def __repr__(self) -> str:
        return (f"MathCollapse(extract={self.extract}, sig_digits={self.sig_digits}, "
                f"style={self.style!r}, unmarked={self.unmarked!r}{self._disabled_repr()})")


#: what may follow a number as its unit: letters, powers and "/" ("m/s^2", "km²", "kg m"), but no
#: operator or bracket that would make the text an expression
_UNIT_TAIL = re.compile(r"(?:[ \t]+|[ \t]*[°º][ \t]*)[^\W\d_][^\W_]*(?:(?:[ \t]*(?:/|\^|\*\*)[ \t]*|[ \t]+)[^\W_]+)*[ \t.]*")


_MATH_WORDS = {"pi", "sqrt", "e", "i"}


def _number_before_unit(span: str) -> str | None:
    """The number of "<number> <unit>" ("3 × 10⁸ m/s" -> "3 × 10⁸"), else None."""
    if len(span) > 200:  # an answer, not a paragraph
        return None
    m = NUMBER_RE.match(span.strip())
    if m is None or m.group(0).count("/"):
        return None
    tail = span.strip()[m.end():]
    if _UNIT_TAIL.fullmatch(tail) is None or _MATH_WORDS & set(tail.lower().split()):
        return None
    return m.group(0)


def exact_gold(question: Question) -> frozenset[str]:
    """The gold classes of a clustering B: the aliases' own normalised texts, never a cluster
    they were merged into (grading compares the prediction with the gold exactly)."""
    return frozenset(g for g in (normalize_answer(a) for a in question.answers) if g)


def math_instead(b: Any, question: Question, texts: Sequence[str]) -> Collapsed:
    """Label a math question with the math B (``b.math``), warning once per B instance."""
    if not getattr(b, "_warned_math", False):
        log.warning("the %s collapsing function does not cluster math answers (numbers that look "
                    "alike are not equal); math questions are labelled by the math B", b.name)
        b._warned_math = True
    return b.math(question, texts)
