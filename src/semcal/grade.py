"""Grading: the plurality class of a question's samples against B(gold).

The paper's definition: the prediction is the plurality class of the collapsed samples, its
share is the semantic confidence, and it is correct iff it lies in B_x(gold), the classes of
the gold aliases under the *same* B. :func:`grade` does exactly that.

Graders (``get_grader(name)``) wrap other notions of correctness over the same prediction:

- ``"exact"`` (:class:`LabelGrader`): the label is one of the gold labels. ``contains=True``
  also accepts a short prediction (at most ``max_words`` words) that contains a gold label as
  whole words ("paris france" for gold "paris"). It is *off* by default: it is asymmetric
  (it favours verbose answers that happen to include the gold, e.g. "paris texas") and departs
  from the paper's prediction == B(gold); turn it on to be lenient with alias lists that miss
  qualified forms.
- ``"numeric"`` (:class:`NumericGrader`): numbers equal within a relative tolerance.
- ``"judge"`` (:class:`JudgeGrader`): a language model reads the question, the gold answers
  and a response of the predicted class, and says CORRECT, INCORRECT or NOT_ATTEMPTED
  (the SimpleQA protocol, in our own words). Only CORRECT counts as correct.
- ``"auto"``: numeric for ``task == "math"``, exact otherwise.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from semcal.collapse.mathequiv import math_value
from semcal.collapse.normalize import contains_as_words
from semcal.errors import InputError
from semcal.registry import Registry, needs_sampler
from semcal.types import (
    NON_ANSWERS,
    Collapsed,
    Message,
    Prompt,
    Question,
    SamplingParams,
)


@dataclass(frozen=True)
class Grade:
    """The graded prediction of one question.

    ``prediction`` is the plurality label, ``count`` its number of samples out of ``n``,
    ``correct`` whether it matches the gold; ``verdict`` is the judge's word when a judge
    graded ("CORRECT" / "INCORRECT" / "NOT_ATTEMPTED"), else None.
    """

    prediction: str
    count: int
    n: int
    correct: bool
    verdict: str | None = None

    @property
    def confidence(self) -> float:
        """The semantic confidence (:func:`answer_confidence`): the plurality share count / n,
        0 when the prediction is no answer."""
        return answer_confidence(self.prediction, self.count, self.n)


def is_empty_answer(text: str) -> bool:
    """True for an empty answer: a completion whose text is empty or only whitespace.

    A model gives one when its token budget runs out before it writes anything visible (a
    reasoning model behind an OpenAI-compatible API answers ``""`` with finish_reason
    ``length`` and its reasoning elsewhere) or when it ends at once. It is a real draw of the
    model under the run's settings, so it is stored like any sample (the runner warns with
    their count); analysis labels it :data:`~semcal.types.NO_ANSWER` whatever the B, which is
    never correct and gives a question where it is the plurality confidence 0
    (:func:`answer_confidence`). A missing or null text is not an empty answer but a
    malformed one (the HTTP backend retries it and never stores it).
    """
    return not text.strip()


def answer_confidence(prediction: str, count: int, n: int) -> float:
    """The semantic confidence of a question: the share ``count / n`` of its samples in the
    predicted class, and 0 when that class is not an answer (:data:`~semcal.types.NO_ANSWER`,
    :data:`~semcal.types.REFUSAL`).

    A question whose samples are mostly empty, cut off or refusals has no answer to be
    confident in: counting its non-answers as a unanimous class would report confidence 1
    for a prediction that can never be correct (a run of empty answers showed smECE 1.0).
    The prediction itself stays the plurality class, so accuracy is unchanged.
    """
    if not n or prediction in NON_ANSWERS:
        return 0.0
    return count / n


def class_shares(labels: Sequence[str]) -> dict[str, float]:
    """The share of the samples in each class (the empirical class distribution), in order of
    first appearance. The plurality's share is :func:`answer_confidence` when it is an answer."""
    labels = list(labels)
    if not labels:
        raise InputError("class shares of an empty list of labels")
    return {lab: k / len(labels) for lab, k in Counter(labels).items()}


def plurality(labels: Sequence[str]) -> tuple[str, int]:
    """The most frequent label and its count, whatever the order of the samples.

    Ties: a real answer beats :data:`~semcal.types.NO_ANSWER` and
    :data:`~semcal.types.REFUSAL`; between tied answers the smallest label (in code-point
    order) wins, so the prediction never depends on which sample came first.
    ``plurality([])`` raises :class:`InputError`.
    """
    labels = list(labels)
    if not labels:
        raise InputError("plurality of an empty list of labels")
    counts = Counter(labels)
    best = min(counts, key=lambda lab: (-counts[lab], lab in NON_ANSWERS, lab))
    return best, counts[best]


def is_tied(labels: Sequence[str]) -> bool:
    """True when two or more classes share the largest count (the prediction is a tie-break)."""
    top = Counter(labels).most_common(2)
    return len(top) == 2 and top[0][1] == top[1][1]


def is_correct(prediction: str, gold: Iterable[str], *, contains: bool = False, max_words: int = 6) -> bool:
    """True when ``prediction`` is one of the ``gold`` labels. ``NO_ANSWER`` is never correct.

    ``contains=True`` also accepts a prediction of at most ``max_words`` words that contains a
    gold label as whole words (labels must be normalised text for this to make sense).
    """
    if prediction in NON_ANSWERS:
        return False
    gold = [g for g in gold if g not in NON_ANSWERS]
    if prediction in gold:
        return True
    if contains and len(prediction.split()) <= max_words:
        return any(contains_as_words(prediction, g) for g in gold)
    return False


def grade(collapsed: Collapsed, *, contains: bool = False) -> Grade:
    """Grade one question's collapsed samples: plurality prediction vs ``collapsed.gold``."""
    if not isinstance(collapsed, Collapsed):
        raise InputError(f"grade expects a Collapsed, got {type(collapsed).__name__}")
    label, count = plurality(collapsed.labels)
    ok = is_correct(label, collapsed.gold, contains=contains)
    return Grade(prediction=label, count=count, n=len(collapsed.labels), correct=ok)


class Grader(Protocol):
    """Decides whether the plurality class of a question is correct.

    ``grader(question, collapsed, texts)`` returns a :class:`Grade`; ``texts`` are the raw
    responses (needed only by graders that read them, like the judge).
    """

    name: str

    def __call__(self, question: Question, collapsed: Collapsed,
                 texts: Sequence[str] | None = None) -> Grade: ...


class LabelGrader:
    """Correct iff the plurality label is a gold label (optionally: contains one, see module doc)."""

    name = "exact"

    def __init__(self, *, contains: bool = False, max_words: int = 6):
        self.contains = contains
        self.max_words = max_words

    def __call__(self, question: Question, collapsed: Collapsed,
                 texts: Sequence[str] | None = None) -> Grade:
        label, count = plurality(collapsed.labels)
        ok = is_correct(label, collapsed.gold, contains=self.contains, max_words=self.max_words)
        return Grade(label, count, len(collapsed.labels), ok)


def _label_value(label: str) -> complex | None:
    if label in NON_ANSWERS or label.startswith("f("):
        return None
    return math_value(label.lstrip("≈"))


class NumericGrader:
    """Correct iff the plurality label's number equals a gold number within tolerance.

    Compares ``|p - g| <= max(rel_tol * max(|p|, |g|), abs_tol)`` over the numeric values of the
    labels (as made by the math B) and also of the raw gold aliases; labels without a number
    fall back to equality.
    """

    name = "numeric"

    def __init__(self, *, rel_tol: float = 1e-6, abs_tol: float = 0.0):
        if not (rel_tol >= 0 and abs_tol >= 0):
            raise InputError("tolerances must be >= 0")
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol

    def __call__(self, question: Question, collapsed: Collapsed,
                 texts: Sequence[str] | None = None) -> Grade:
        label, count = plurality(collapsed.labels)
        n = len(collapsed.labels)
        if label in NON_ANSWERS:
            return Grade(label, count, n, False)
        if label in collapsed.gold:
            return Grade(label, count, n, True)
        p = _label_value(label)
        if p is None:
            return Grade(label, count, n, False)
        golds = [_label_value(g) for g in collapsed.gold]
        golds += [math_value(a) for a in question.answers]
        ok = any(
            g is not None and abs(p - g) <= max(self.rel_tol * max(abs(p), abs(g)), self.abs_tol)
            for g in golds
        )
        return Grade(label, count, n, ok)


# --------------------------------------------------------------------------- judge grader

JUDGE_VERDICTS = ("CORRECT", "INCORRECT", "NOT_ATTEMPTED")

JUDGE_GRADE_INSTRUCTIONS = """You are grading an answer to a question against the reference answer(s).
Reply with exactly one word:
CORRECT - the response gives the reference answer (or an equivalent form of it: another name, \
spelling, unit or rounding that means the same thing) and does not contradict it.
INCORRECT - the response gives a different answer, gives several candidates, or contradicts \
the reference.
NOT_ATTEMPTED - the response gives no answer (a refusal, "I don't know", or only \
restates the question), without contradicting the reference.
Judge only the meaning of the final answer; ignore style, reasoning and extra harmless detail."""

_VERDICT_RE = re.compile(r"NOT[\s_-]*ATTEMPTED|NOT[\s_-]+CORRECT|INCORRECT|CORRECT", re.IGNORECASE)
_LETTER_RE = re.compile(r"^[\s*(\[]*([ABC])(?![A-Za-z])")


def parse_verdict(text: str) -> str | None:
    """The first verdict named in a judge's reply, or None.

    Accepts "CORRECT", "incorrect.", "Not attempted", "NOT-ATTEMPTED", "**Verdict: CORRECT**",
    "not correct" (INCORRECT), and a leading capital letter A / B / C (correct / incorrect /
    not attempted) that some judges answer with. "INCORRECT" is never read as "CORRECT".
    """
    if not isinstance(text, str):
        return None
    text = text[:2000]
    m = _VERDICT_RE.search(text)
    if m is not None:
        word = re.sub(r"[\s_-]+", "_", m.group(0).upper())
        return "INCORRECT" if word == "NOT_CORRECT" else word
    letter = _LETTER_RE.match(text)
    if letter is not None:
        return {"A": "CORRECT", "B": "INCORRECT", "C": "NOT_ATTEMPTED"}[letter.group(1)]
    return None


class JudgeGrader:
    """SimpleQA-style grading by a language model (any semcal Sampler).

    The judge is asked greedily (``max_tokens`` short) with :data:`JUDGE_GRADE_INSTRUCTIONS`,
    the question, the gold answers and the first response of the predicted class. Replies are
    cached in memory by (model, question, gold, response). An unparseable reply counts as
    INCORRECT and is reported with ``verdict=None``.
    """

    name = "judge"

    def __init__(self, sampler: Any, *, max_tokens: int = 8):
        if not hasattr(sampler, "sample"):
            raise InputError("JudgeGrader needs a Sampler (an object with .sample)")
        self.sampler = sampler
        self.max_tokens = max_tokens
        self._cache: dict[tuple[str, str, tuple[str, ...], str], str] = {}

    def prompt(self, question: Question, response: str) -> Prompt:
        gold = " | ".join(question.answers)
        body = (f"Question: {question.question}\nReference answer(s): {gold}\n"
                f"Response: {response.strip()[:2000]}\n")
        if self.sampler.is_chat:
            return Prompt(messages=(
                Message("system", JUDGE_GRADE_INSTRUCTIONS),
                Message("user", body + "Verdict (CORRECT, INCORRECT or NOT_ATTEMPTED):"),
            ))
        return Prompt(text=JUDGE_GRADE_INSTRUCTIONS + "\n\n" + body + "Verdict:")

    def verdicts(self, question: Question, responses: Sequence[str]) -> list[str | None]:
        """One verdict per response (None when the judge's reply names none)."""
        model = str(self.sampler.model_name)
        keys = [(model, question.question, tuple(question.answers), r) for r in responses]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        if todo:
            params = SamplingParams(temperature=0.0, max_tokens=self.max_tokens, stop=("\n",),
                                    logprobs=False)
            outs = self.sampler.sample([self.prompt(question, responses[i]) for i in todo], 1, params)
            for i, out in zip(todo, outs):
                self._cache[keys[i]] = out[0].text if out else ""
        return [parse_verdict(self._cache[k]) for k in keys]

    def __call__(self, question: Question, collapsed: Collapsed,
                 texts: Sequence[str] | None = None) -> Grade:
        label, count = plurality(collapsed.labels)
        n = len(collapsed.labels)
        if label in NON_ANSWERS:
            return Grade(label, count, n, False, verdict="NOT_ATTEMPTED")
        if texts is None or len(texts) != n:
            raise InputError("the judge grader needs the raw texts, one per label",
                             where=f"question {question.id!r}")
        response = texts[collapsed.labels.index(label)]
        (verdict,) = self.verdicts(question, [response])
        return Grade(label, count, n, verdict == "CORRECT", verdict=verdict)


class AutoGrader:
    """Numeric grading for ``task == "math"`` questions, exact-label grading otherwise."""

    name = "auto"

    def __init__(self, *, rel_tol: float = 1e-6, abs_tol: float = 0.0, contains: bool = False):
        self.numeric = NumericGrader(rel_tol=rel_tol, abs_tol=abs_tol)
        self.exact = LabelGrader(contains=contains)

    def __call__(self, question: Question, collapsed: Collapsed,
                 texts: Sequence[str] | None = None) -> Grade:
        grader = self.numeric if question.task == "math" else self.exact
        return grader(question, collapsed, texts)


#: the graders by name (semcal.registry): register one here to add it. Metadata: ``judge=True``
#: for a grader that asks a judge model (its ``sampler`` option; its verdicts are cached in the
#: store under the judge model's name), ``objects``: options that are objects, not values.
GRADER_REGISTRY: Registry[Callable[..., Grader]] = Registry("grader")
GRADER_REGISTRY.register("exact", LabelGrader)
GRADER_REGISTRY.register("numeric", NumericGrader)
GRADER_REGISTRY.register("judge", needs_sampler("grader", JudgeGrader), objects=("sampler",),
                         judge=True)
GRADER_REGISTRY.register("auto", AutoGrader)


def __getattr__(name: str) -> Any:
    # ``GRADERS``, kept for old imports: the registry's names at the moment it is read (a
    # module constant would freeze the graders registered at import time). Validate a name
    # with ``GRADER_REGISTRY.lookup`` instead.
    if name == "GRADERS":
        return GRADER_REGISTRY.names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_grader(name: str, **opts: Any) -> Grader:
    """A grader by name: "exact", "numeric", "judge" (needs ``sampler=``), or "auto"
    (numeric for math questions, exact otherwise). ``opts`` go to the grader's constructor."""
    return GRADER_REGISTRY.create(name, **opts)


__all__ = [
    "GRADER_REGISTRY", "AutoGrader", "Grade", "Grader", "JUDGE_GRADE_INSTRUCTIONS", "JUDGE_VERDICTS", "JudgeGrader",
    "LabelGrader", "NumericGrader", "answer_confidence", "class_shares", "get_grader", "grade",
    "is_correct", "is_tied", "parse_verdict", "plurality",
]
