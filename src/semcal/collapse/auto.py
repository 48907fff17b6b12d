"""The default collapsing function B (``auto``): per-text answers, then two meaning-preserving
merges and a non-answer rule that a per-text B cannot apply on its own.

Steps, for one question's responses:

1. **Per-text label** — a refusal ("I don't know", "As an AI ...") is
   :data:`~semcal.types.REFUSAL`; otherwise the final answer is extracted (style-aware: in a
   chain of thought only an explicitly stated final answer counts) and normalised: the math
   canonical value for ``task == "math"``, normalised text otherwise.
2. **Gold-alias closure** — every label equal to the label of one of the question's gold
   aliases becomes one class, named by the first alias ("praha" and "prague" are one class).
3. **Containment merge** (QA only) — a longer answer that names, as whole words, exactly one
   shorter answer (another sampled class or a gold alias) and no other joins that class:
   "havana capital of cuba" joins "havana", "ho chi minh city vietnam" joins "ho chi minh
   city". The gold class never joins another (a shorter answer inside a gold alias, "ho chi
   minh", stays apart: "new" is not "new york"). Words of
   the question do not count as an answer ("cuba" in "What is the capital of Cuba?" is no
   candidate), and an answer naming two candidates or a disjunction ("sydney or havana")
   stays on its own.
4. **Non-answers** (QA only, ``answers_only=True``) — a label that is no answer to the
   question counts as :data:`~semcal.types.NO_ANSWER`: one that talks about the exchange
   instead of answering (it has a word such as "question", "answer", "please", "you", or "I"
   speaking: "great question", "can you please specify", "i m not sure"), one that asks
   ("who", "held in which city"), and, after step 3, one still longer than ``max_words``
   words (by default 6 for concise answers and no limit otherwise,
   :data:`MAX_WORDS_BY_STYLE`): a sentence about something else. A direct answer
   ("concise" or "sentence" style) that names nothing, to a question whose gold aliases are
   all names ("Capital is a city/region." for "What is the capital of Cuba?"), is no answer
   either (:class:`~semcal.collapse.exact.ExactCollapse`'s ``names`` option, applied per
   text because it needs the capital letters). A gold alias is never dropped. (A label made
   only of the question's own words, "malta" for "What is the capital of Malta?", stays a
   wrong answer, as the hand labels have it.)

Step 3 looks at the other responses of the question, so the partition depends on what was
sampled (as any clustering does); it is deterministic given that set and does not depend on
the order of the samples. Ties in the plurality are broken by
:func:`semcal.grade.plurality`, which is order-free too.

Measured against hand labels with ``python bench/collapse.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from semcal.collapse.exact import ExactCollapse, MathCollapse, check_inputs
from semcal.collapse.extract import DEFAULT_UNMARKED
from semcal.collapse.mathequiv import DEFAULT_TIME_BUDGET
from semcal.collapse.normalize import STOPWORDS, contains_as_words, normalize_answer
from semcal.errors import InputError
from semcal.types import NO_ANSWER, NON_ANSWERS, Collapsed, Question

#: per style, an answer longer than this (after the containment merge) is taken for a sentence
#: about something else. Only concise answers (the prompt asks for a few words) get a limit: on
#: the labelled benchmark 6 words helped the instruct model's concise answers and changed nothing
#: for the base model, while any limit hurt sentence and cot answers (docs/collapse.md)
MAX_WORDS_BY_STYLE: dict[str, int] = {"concise": 6}
_BY_STYLE: Any = object()

# words of a reply that talks about the exchange instead of answering (normalised forms)
META_WORDS = frozenset(
    {"question", "questions", "answer", "answers", "answered", "answering", "answerable",
     "specify", "specified", "provide", "provided", "please", "sentence", "sentences", "word",
     "words", "description", "assistant", "query", "request", "me", "my", "you", "your",
     "let", "hello", "sorry", "thanks", "thank"}
)
_I_CONTRACTED = frozenset({"m", "am", "ll", "ve", "d", "think", "can", "don", "do", "have", "will"})
# a label with one of these asks instead of answering ("who", "held in which city")
_ASKING_WORDS = frozenset({"who", "whom", "whose", "what", "which"})

# words that never make an answer on their own: the shared stop words, and three more that a
# question uses around the thing it asks for ("has been called", "is known as")
_NOT_ANSWERS = STOPWORDS | {"been", "called", "known"}


_DISJUNCTION = frozenset({"or", "either"})


def question_words(question: str) -> frozenset[str]:
    """The normalised words of a question (plus function words): none of them is an answer."""
    return frozenset(normalize_answer(question).split()) | _NOT_ANSWERS


def is_non_answer(label: str) -> bool:
    """Whether a normalised QA ``label`` answers nothing: it talks about the exchange (a word
    of :data:`META_WORDS`, or "i" speaking: "i m not sure") or it asks ("who", "held in which
    city")."""
    if label in NON_ANSWERS:
        return False
    words = label.split()
    if set(words) & (META_WORDS | _ASKING_WORDS):
        return True
    # "i m not sure", "i ll do my best", "i am a skeptic" (but "world war i" answers)
    return words[0] == "i" or any(a == "i" and b in _I_CONTRACTED for a, b in zip(words, words[1:]))


def merge_contained(
    labels: Sequence[str], anchors: Sequence[str], qwords: frozenset[str]
) -> dict[str, str]:
    """Map each label to the class it joins by containment (see the module docstring).

    ``anchors`` are extra candidate classes that need not be sampled (the gold label). A
    label that joins no class maps to itself. Shorter labels are settled first, so a chain
    ("ho chi minh city vietnam" -> "ho chi minh city" -> "ho chi minh") ends at its root.
    """
    real = sorted({lab for lab in labels if lab not in NON_ANSWERS},
                  key=lambda lab: (len(lab.split()), len(lab), lab))
    candidates = [a for a in dict.fromkeys(anchors) if a not in NON_ANSWERS]
    root: dict[str, str] = {a: a for a in candidates}  # an anchor (the gold) never moves
    # candidates by first word: one can be contained in a label only if the label has that word
    by_first: dict[str, list[str]] = {}

    def add(c: str) -> None:
        by_first.setdefault(c.split(" ", 1)[0], []).append(c)

    for c in candidates:
        add(c)
    for lab in real:
        if lab in root:
            continue
        words = lab.split()
        if _DISJUNCTION & set(words):  # "sydney or havana" hedges: it joins no class
            root[lab] = lab
            candidates.append(lab)
            add(lab)
            continue
        near = [c for w in dict.fromkeys(words) for c in by_first.get(w, ())]
        hits = [c for c in near
                if c != lab and len(c) < len(lab) and contains_as_words(lab, c)
                and not set(c.split()) <= qwords]
        # keep the most specific candidates: "new york" rather than "york" inside it
        hits = [c for c in hits if not any(o != c and contains_as_words(o, c) for o in hits)]
        targets = {root.get(c, c) for c in hits}
        if len(targets) == 1:
            root[lab] = targets.pop()
        else:
            root[lab] = lab
            candidates.append(lab)
            add(lab)
    return root


class AutoCollapse:
    """The default B: per-text labels (math or exact), gold-alias closure, containment merge.

    Options: ``style`` and ``unmarked`` (how a reasoning response is read, see
    :class:`~semcal.collapse.exact.ExactCollapse`), ``aliases`` (step 2, default True),
    ``merge`` (step 3, default True), ``answers_only`` (step 4, default True) and its
    ``max_words`` (default: :data:`MAX_WORDS_BY_STYLE`; None: no length limit),
    ``sig_digits``, ``time_budget`` (math), ``accents``,
    ``use_question`` (exact), ``extract``, ``disabled`` (extraction rules switched off by name,
    :data:`~semcal.collapse.extract.RULES`).
    """

    name = "auto"

    def __init__(self, *, style: str | None = None, unmarked: str = DEFAULT_UNMARKED, aliases: bool = True,
                 merge: bool = True, answers_only: bool = True,
                 max_words: int | None = _BY_STYLE,
                 extract: bool = True, accents: bool = False,
                 use_question: bool = True, sig_digits: int | None = None,
                 time_budget: float = DEFAULT_TIME_BUDGET, disabled: Iterable[str] | str = ()):
        self.math = MathCollapse(extract=extract, sig_digits=sig_digits, time_budget=time_budget,
                                 style=style, unmarked=unmarked, disabled=disabled)
        self.exact = ExactCollapse(extract=extract, accents=accents, use_question=use_question,
                                   style=style, unmarked=unmarked, names=answers_only,
                                   disabled=disabled)
        if max_words is _BY_STYLE:
            max_words = MAX_WORDS_BY_STYLE.get(style or "")
        if max_words is not None and (isinstance(max_words, bool) or not isinstance(max_words, int)
                                      or max_words < 1):
            raise InputError(f"max_words must be an integer >= 1 or None, got {max_words!r}")
        self.max_words = max_words
        self.answers_only = bool(answers_only)
        self.aliases = bool(aliases)
        self.merge = bool(merge)
        self.style = style

    def base(self, question: Question) -> ExactCollapse:
        """The per-text B for ``question``: math for ``task == "math"``, exact otherwise."""
        return self.math if question.task == "math" else self.exact

    def __call__(self, question: Question, texts: Sequence[str]) -> Collapsed:
        texts = check_inputs(question, texts)
        base = self.base(question)
        return self.finish(question, base.labels(question, texts))

    def finish(self, question: Question, labels: Sequence[str]) -> Collapsed:
        """Steps 2 and 3 (gold-alias closure, containment merge) over per-text ``labels``
        made the way :meth:`base` makes them (the judge B re-uses this)."""
        base = self.base(question)
        labels = list(labels)
        gold_labels = [g for g in (base.gold_label(question, a) for a in question.answers)
                       if g not in NON_ANSWERS]
        gold = frozenset(gold_labels)
        if self.aliases and gold_labels:
            canon = gold_labels[0]
            labels = [canon if lab in gold else lab for lab in labels]
            gold = frozenset({canon})
        qa = question.task != "math"
        qwords = question_words(question.question) if qa else frozenset()
        if self.merge and qa:
            anchors = sorted(gold) if self.aliases else []
            root = merge_contained(labels, anchors, qwords)
            labels = [root.get(lab, lab) for lab in labels]
        if self.answers_only and qa:
            limit = self.max_words
            labels = [NO_ANSWER if lab not in gold and (
                is_non_answer(lab) or (limit is not None and len(lab.split()) > limit)) else lab
                for lab in labels]
        return Collapsed(labels=tuple(labels), gold=gold)

    def __repr__(self) -> str:
        return (f"AutoCollapse(style={self.style!r}, aliases={self.aliases}, merge={self.merge}, "
                f"answers_only={self.answers_only}, max_words={self.max_words}, "
                f"{self.math!r}, {self.exact!r})")
