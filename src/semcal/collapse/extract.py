"""Final-answer extraction: the short answer inside a one-word reply, a sentence, a paragraph or
a chain of thought.

``extract_answer(text, task)`` returns the answer span as written (not yet normalised), or
``None`` when the text holds no answer. It walks :data:`RULES`, a table of small named rules in
order; each rule says which tasks ("qa", "math") and response styles it applies to and keeps a
few example replies with the answer they give (``tests/test_extract.py`` checks each example,
and that switching its rule off changes it). The rules come in four stages:

* **text** — narrow the reply: cut few-shot leftovers and end-of-turn tokens (``leftovers``);
  for a direct answer, keep the first line that says something (``direct_line``);
* **find** — the first rule that finds an answer ends the walk: the last ``\\boxed{}``, the
  last ``#### 42``, the last answer marker ("The answer is ...", "A: ..."); for a chain of
  thought without a marker the answer it states, or none, or its last number (by
  ``unmarked``); for math a short reply whole or else its last number; for QA the first line,
  past a question echoed at its start, read for a year when the question asks for one, else
  as a short answer. A find rule may also narrow the text for the rules after it and give
  :data:`NEXT`;
* **clean** and **final** — every span found is cleaned (:func:`clean_span`): leading hedges
  ("I think it's"), a parenthetical, everything after the first sentence, trailing hedges
  (", I think"), for QA with the question the agent or copula cut ("The capital of France is
  Paris." -> "Paris") and a long statement that restates nothing (-> no answer), an
  apposition ("Havana, the capital of Cuba"), math delimiters, and the prompt's placeholder
  ("The answer is X." states nothing: the marker before it is read).

``disabled`` switches rules off by name (``bench/collapse.py --ablate`` measures each one's
worth this way); the built-in Bs pass it on from their own ``disabled`` option.

Safety: the input is cut to :data:`MAX_EXTRACT_CHARS` characters, and the rules are built from
the linear-time pieces of :mod:`semcal.collapse.spans`. Model text is only ever read, never run.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from semcal.collapse.spans import (
    MAX_EXTRACT_CHARS,
    NUMBER_RE,
    agent_cut,
    asks_year,
    copula_cut,
    cut_leftovers,
    first_sentence,
    is_question,
    last_boxed,
    other_side,
    restates,
    skip_question_echo,
    strip_hedges,
    weak_statement,
    year_in,
)
from semcal.errors import InputError

#: a math reply whose first line is at most this long is taken whole (the parser decides)
SHORT_MATH_CHARS = 48

_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_MARKER = re.compile(
    r"(?:\b(?:the[ \t]+)?(?:(?:final|correct|short|best)[ \t]+)?answer(?:[ \t]+(?:to|for)[ \t]+(?:this|the|that|your|my)[ \t]+question)?(?:\*\*)?[ \t]*"
    r"(?:is|would[ \t]+be|should[ \t]+be|will[ \t]+be|=|:)"
    r"|^[ \t]*(?:\*\*)?A(?:\*\*)?[ \t]*:)",
    re.IGNORECASE | re.MULTILINE,
)
_TRAILING_HEDGE = re.compile(
    r"[ \t]*[,;(][ \t]*(?:i[ \t]+think|i[ \t]+believe|i[ \t]+guess|i[ \t]+suppose|i['’]m[ \t]+not[ \t]+sure"
    r"|i['’]m[ \t]+(?:pretty[ \t]+|fairly[ \t]+|quite[ \t]+)?(?:sure|certain|confident)"
    r"|probably|maybe|perhaps|if[ \t]+i[ \t]+recall|if[ \t]+i['’]m[ \t]+not[ \t]+mistaken)(?![\w'’]).*",
    re.IGNORECASE,
)
_APPOSITION = re.compile(r",[ \t]*(?:who|which|whom|whose|where|a|an|the)[ \t]", re.IGNORECASE)
_OPENING = re.compile(
    r"[ \t]*(?:in|on|at|during|after|before|since|by|from|for|as|with|although|while|when|if"
    r"|based|according|born|like|unlike|despite|because|today|now|yes|no)\b", re.IGNORECASE)
_PARENTHETICAL = re.compile(r"[ \t]*\([^()\n]{0,80}\)")
_STRIP_CHARS = " \t\r\n*_`\"'“”‘’«»„.,;:!?"


#: what the prompts call the answer ("finish with 'The answer is X.'"): a model that repeats
#: the instruction states no answer
PLACEHOLDERS = frozenset({"X", "answer", "your answer", "final answer", "...", "…"})
#: a reasoning reply of at most this many words, on one line, is read as a direct answer
SHORT_REPLY_WORDS = 4
#: styles whose answer comes first (only the first line that says something is read)
DIRECT_STYLES = ("concise", "sentence")
#: what a reasoning (``style="cot"``) response without an explicit final answer counts as
UNMARKED_RULES = ("none", "stated", "last_number", "first_sentence")
#: the rule the built-in Bs use: on the labelled benchmark it beat "none" in count and grade
#: error on both models' QA chains of thought (docs/collapse.md); for math it is "none"
DEFAULT_UNMARKED = "stated"


# -- the rules' shapes ----------------------------------------------------------------------


class Next:
    """What a find rule gives when it found no answer: the walk goes on with the next rule."""

    def __repr__(self) -> str:
        return "NEXT"


NEXT = Next()


@dataclass
class Reading:
    """One call of :func:`extract_answer`: the reply as the rules so far left it, and what the
    rules read besides."""

    text: str
    math: bool
    question: str | None
    style: str | None
    unmarked: str
    off: frozenset[str]

    def on(self, name: str) -> bool:
        """Whether the rule ``name`` is switched on (rules that are also steps of another
        rule ask this)."""
        return name not in self.off


@dataclass
class Cleaning:
    """One span being cleaned by the clean and final rules."""

    math: bool
    question: str | None  # the question, for the agent and copula cuts (None: no cut)
    agent_cut: bool = False  # the agent rule cut the span: the copula rule leaves it
    before_copula: str | None = None  # the span the copula rule cut (the weak_statement rule)


@dataclass(frozen=True)
class Example:
    """A reply and the answer :func:`extract_answer` gives for it with every rule on."""

    text: str
    expected: str | None
    task: str = "qa"
    question: str | None = None
    style: str | None = None
    unmarked: str = "none"

    def run(self, disabled: Iterable[str] = ()) -> str | None:
        return extract_answer(self.text, self.task, question=self.question, style=self.style,
                              unmarked=self.unmarked, disabled=disabled)


@dataclass(frozen=True)
class Rule:
    """One extraction rule: its name, stage, what it applies to, its function and examples.

    ``fn`` takes a :class:`Reading` in the text stage (it returns the narrowed text, or None:
    no answer) and the find stage (an answer, None, or :data:`NEXT`), and ``(span, Cleaning)``
    in the clean and final stages (the cleaned span, or None: no answer). ``tasks``: "qa"
    (every task but math) and/or "math"; ``styles`` and ``unmarked``: None for all, else the
    response styles and ``unmarked`` settings it applies under.
    """

    name: str
    stage: str
    fn: Callable[..., Any]
    examples: tuple[Example, ...]
    tasks: frozenset[str] = frozenset({"qa", "math"})
    styles: frozenset[str] | None = None
    unmarked: frozenset[str] | None = None

    def applies(self, kind: str, style: str | None = None, unmarked: str | None = None) -> bool:
        return (kind in self.tasks
                and (self.styles is None or style in self.styles)
                and (self.unmarked is None or unmarked in self.unmarked))

    @property
    def doc(self) -> str:
        """The first line of the rule function's docstring."""
        return (self.fn.__doc__ or "").strip().split("\n")[0]


# -- text rules: narrow the reply ----------------------------------------------------------


def _leftovers(r: Reading) -> str:
    """Drop a few-shot leftover ("42\\nQ: ...") or an end-of-turn token and all after it."""
    return cut_leftovers(r.text)


def _direct_line(r: Reading) -> str | None:
    """A direct answer is its first line that says something: past a lead-in ending in ":" and
    a question echoed at its start; a line that only asks is no answer."""
    lines = [ln for ln in r.text.split("\n") if ln.strip()]
    if not lines:
        return None
    first = lines[0]
    if first.rstrip(" *").endswith(":") and len(lines) > 1:
        first = lines[1]
    if r.on("question_echo"):
        first = skip_question_echo(first)
    return None if is_question(first) else first


# -- find rules: the first one that finds an answer ends the walk ---------------------------


def _boxed(r: Reading) -> str | None | Next:
    """The last ``\\boxed{...}`` (or ``\\fbox``), braces balanced."""
    boxed = last_boxed(r.text)
    return NEXT if boxed is None else clean_span(boxed, r, question=None)


def _hashes(r: Reading) -> str | None | Next:
    """The last GSM8K-style ``#### 42`` line."""
    last = None
    for m in _HASHES.finditer(r.text):
        last = m
    got = None if last is None else clean_span(last.group(1), r, question=None)
    return NEXT if got is None else got


def _marker(r: Reading) -> str | None | Next:
    """The last answer marker that states something ("The answer is ...", "Final answer:",
    "A: ..."), to the end of its sentence."""
    for m in reversed(list(_MARKER.finditer(r.text))):
        got = clean_span(r.text[m.end():], r, question=None)
        if got is not None:
            return got
    return NEXT


def _cot_stated(r: Reading) -> str | None | Next:
    """A chain of thought without a marker answers what it states (``unmarked="stated"``, a
    question given): a reply of a few words, or the first sentence that names the agent or
    year asked for or restates the question at a copula."""
    return NEXT if not r.question else _stated_answer(r.text, r.question, r)


def _cot_marker_only(r: Reading) -> str | None | Next:
    """A chain of thought without a marker (``unmarked`` "none" or "stated") answers nothing."""
    return None


def _last_number(r: Reading) -> str | None | Next:
    """The last number in the text (spaces inside it removed)."""
    last = None
    for m in NUMBER_RE.finditer(r.text):
        last = m
    return None if last is None else last.group(0).replace(" ", "").replace("\t", "")


def _math_whole(r: Reading) -> str | None | Next:
    """A short one-sentence math reply is parsed whole ("3/4", "\\frac{3}{4}", "$1,200")."""
    whole = r.text.strip()
    if (len(whole) <= SHORT_MATH_CHARS and "\n" not in whole
            and first_sentence(whole).rstrip(".!? ") == whole.rstrip(".!? ")):
        return clean_span(whole, r, question=None)
    return NEXT


def _first_line(r: Reading) -> str | None | Next:
    """Only the first non-empty line of a reply is read; a blank reply answers nothing."""
    for line in r.text.split("\n"):
        if line.strip():
            r.text = line
            return NEXT
    return None


def _question_echo(r: Reading) -> str | None | Next:
    """Sentences that ask, at the start of a line, echo the question and are skipped ("What is
    the capital of Turkey? It is Ankara.")."""
    r.text = skip_question_echo(r.text)
    return NEXT


def _year(r: Reading) -> str | None | Next:
    """A question asking for a year is answered by the one year its reply's first sentence
    names ("In 2022, the war began." -> "2022")."""
    if r.question and asks_year(r.question):
        year = year_in(first_sentence(r.text), r.question)
        if year is not None:
            return year
    return NEXT


def _plain_reply(r: Reading) -> str | None | Next:
    """A reply without a marker is read as a short answer: its first sentence, cleaned (with
    the question, cut at its agent or copula)."""
    return clean_span(r.text, r, question=r.question)


# -- clean rules: each span found is cleaned ----------------------------------------------


def _hedges(span: str, c: Cleaning) -> str | None:
    """Leading hedges and what they leave ("I think it's Paris" -> "Paris")."""
    return strip_hedges(span).lstrip(_lead(c.math))


def _parenthetical(span: str, c: Cleaning) -> str | None:
    """A parenthetical ("sodium (Na)" -> "sodium")."""
    return _PARENTHETICAL.sub("", span)


def _sentence_end(span: str, c: Cleaning) -> str | None:
    """Everything after the span's first sentence."""
    return first_sentence(span)


def _trailing_hedge(span: str, c: Cleaning) -> str | None:
    """A trailing hedge ("Paris, I think" -> "Paris")."""
    return _TRAILING_HEDGE.sub("", span)


def _agent(span: str, c: Cleaning) -> str | None:
    """For "Who <verb> ...?", the agent a reply names ("Harper Lee wrote it" -> "Harper Lee")."""
    if not c.question:
        return span
    cut = agent_cut(span, c.question)
    c.agent_cut = cut != span
    return cut


def _copula(span: str, c: Cleaning) -> str | None:
    """A one-sentence reply cut at its copula; the side that does not restate the question is
    kept ("The capital of France is Paris." -> "Paris")."""
    if not c.question or c.agent_cut:
        return span
    c.before_copula = span
    return copula_cut(span, c.question)


def _weak_statement(span: str, c: Cleaning) -> str | None:
    """A copula reply whose long answer side goes with a side that does not restate the
    question says something else: no answer ("Kyrgyzstan is a country in Asia.")."""
    if c.question and c.before_copula is not None and weak_statement(c.before_copula, span, c.question):
        return None
    return span


def _apposition(span: str, c: Cleaning) -> str | None:
    """An apposition or relative clause after a name ("Havana, the capital of Cuba" ->
    "Havana"; not after an opening phrase: "In Argentina, the main language is Spanish")."""
    m = _APPOSITION.search(span)
    if m is not None and m.start() > 0 and not _OPENING.match(span):
        return span[: m.start()]
    return span


def _math_delimiters(span: str, c: Cleaning) -> str | None:
    """Math delimiters around the answer ("$\\frac{1}{2}$", "\\(x^2\\)")."""
    span = span.strip("$ ")
    while span.startswith("\\(") and span.endswith("\\)") and len(span) >= 4:
        span = span[2:-2].strip()
    return span


def _placeholder(span: str, c: Cleaning) -> str | None:
    """The prompt's placeholder repeated ("The answer is X.") states no answer."""
    bare = span.strip()
    if bare.strip("[]<>{}()\"'") in PLACEHOLDERS or bare.startswith("X. "):
        return None
    return span


# -- the table ------------------------------------------------------------------------------

_QA = frozenset({"qa"})
_MATH = frozenset({"math"})
_COT = frozenset({"cot"})
_CAPITAL = "What is the capital of France?"

#: the extraction rules, in the order :func:`extract_answer` walks them (each stage in turn)
RULES: tuple[Rule, ...] = (
    Rule("leftovers", "text", _leftovers, (
        Example("Jupiter\nQ: Who wrote Hamlet?\nA: William Shakespeare", "Jupiter"),
        Example("George Washington<|im_end|>", "George Washington"),
    )),
    Rule("direct_line", "text", _direct_line, (
        Example("Sure, here it is:\nParis\nThe answer is a city.", "Paris", style="concise"),
        Example("What is the capital of France?", None, style="sentence"),
    ), styles=frozenset(DIRECT_STYLES)),
    Rule("boxed", "find", _boxed, (
        Example("The probability is \\boxed{\\frac{1}{2}} after all 3 draws.", "\\frac{1}{2}",
                task="math"),
        Example("So the answer is 5, or rather \\boxed{6}.", "6", task="math"),
    )),
    Rule("hashes", "find", _hashes, (
        Example("#### 12\nThat is 3 boxes of 4.", "12", task="math"),
    )),
    Rule("marker", "find", _marker, (
        Example("Let me think. Paris is big, but the answer is Lyon.", "Lyon"),
        Example("Final answer: 13\nCheck: 7 and 6 make 13, not 12.", "13", task="math"),
    )),
    Rule("cot_stated", "find", _cot_stated, (
        Example("The capital of France is Paris. It is known for the Eiffel Tower.", "Paris",
                question=_CAPITAL, style="cot", unmarked="stated"),
    ), tasks=_QA, styles=_COT, unmarked=frozenset({"stated"})),
    Rule("cot_marker_only", "find", _cot_marker_only, (
        Example("Paris is a city in France. Let me think about the", None, style="cot"),
        Example("First 3 apples, then 4 more, so 7", None, task="math", style="cot"),
    ), styles=_COT, unmarked=frozenset({"none", "stated"})),
    Rule("cot_last_number", "find", _last_number, (
        Example("First 3 apples, then 4 more, so 7", "7", task="math", style="cot",
                unmarked="last_number"),
    ), styles=_COT, unmarked=frozenset({"last_number"})),
    Rule("math_whole", "find", _math_whole, (
        Example("\\frac{3}{4}", "\\frac{3}{4}", task="math"),
        Example("2\\sqrt{2}", "2\\sqrt{2}", task="math"),
    ), tasks=_MATH),
    Rule("math_last_number", "find", _last_number, (
        Example("First we add 3 and 4 to get 7. Then we double it to get 14.", "14", task="math"),
    ), tasks=_MATH),
    Rule("first_line", "find", _first_line, (
        Example("Maybe\nParis", "Maybe"),
    ), tasks=_QA),
    Rule("question_echo", "find", _question_echo, (
        Example("What is the capital of Turkey? It is Ankara.", "Ankara"),
    ), tasks=_QA),
    Rule("year", "find", _year, (
        Example("World War II ended in 1945 with the surrender of Japan.", "1945",
                question="In what year did World War II end?"),
    ), tasks=_QA),
    Rule("plain_reply", "find", _plain_reply, (
        Example("Paris", "Paris"),
        Example("Canberra is the capital.", "Canberra is the capital"),
    ), tasks=_QA),
    Rule("hedges", "clean", _hedges, (
        Example("I think it's Paris.", "Paris"),
        Example("The answer is: probably 42", "42", task="math"),
    )),
    Rule("parenthetical", "clean", _parenthetical, (
        Example("Sodium (Na).", "Sodium"),
    ), tasks=_QA),
    Rule("sentence_end", "clean", _sentence_end, (
        Example("Mount Everest. It is 8,849 m tall.", "Mount Everest"),
        Example("The answer is 12. Then 3 more.", "12", task="math"),
    )),
    Rule("trailing_hedge", "clean", _trailing_hedge, (
        Example("Canberra, if I recall correctly", "Canberra"),
    ), tasks=_QA),
    Rule("agent", "clean", _agent, (
        Example("William Shakespeare wrote Hamlet.", "William Shakespeare",
                question="Who wrote Hamlet?"),
        Example("It was written by Harper Lee.", "Harper Lee",
                question="Who wrote To Kill a Mockingbird?"),
    ), tasks=_QA),
    Rule("copula", "clean", _copula, (
        Example("The capital of France is Paris.", "Paris", question=_CAPITAL),
    ), tasks=_QA),
    Rule("weak_statement", "clean", _weak_statement, (
        Example("Kyrgyzstan is a country located in Central Asia.", None,
                question="What is the capital of Kyrgyzstan?"),
    ), tasks=_QA),
    Rule("apposition", "clean", _apposition, (
        Example("Havana, the capital of Cuba", "Havana"),
        Example("Mike Ellis, who developed the game.", "Mike Ellis"),
    ), tasks=_QA),
    Rule("math_delimiters", "final", _math_delimiters, (
        Example("$\\frac{1}{2}$", "\\frac{1}{2}", task="math"),
        Example("The answer is \\(x^2\\).", "x^2", task="math"),
    ), tasks=_MATH),
    Rule("placeholder", "final", _placeholder, (
        Example("The answer is Paris.\nSo the answer is X.", "Paris"),
    )),
)
#: the stages, in the order they run
STAGES = ("text", "find", "clean", "final")
#: every rule's name (what ``disabled`` may hold)
RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)
_BY_STAGE = {stage: tuple(r for r in RULES if r.stage == stage) for stage in STAGES}


def check_disabled(disabled: Iterable[str] | str | None) -> frozenset[str]:
    """``disabled`` as a set of rule names: an iterable of names or one comma-separated string;
    an unknown name raises :class:`~semcal.errors.InputError`."""
    if disabled is None:
        return frozenset()
    if isinstance(disabled, str):
        names: list[Any] = [n.strip() for n in disabled.split(",") if n.strip()]
    else:
        names = list(disabled)
    unknown = [n for n in names if not isinstance(n, str) or n not in RULE_NAMES]
    if unknown:
        raise InputError(f"unknown extraction rule {', '.join(map(repr, unknown))} "
                         f"(known: {', '.join(RULE_NAMES)})")
    return frozenset(names)


def extract_answer(
    text: str | None, task: str = "qa", *, question: str | None = None,
    style: str | None = None, unmarked: str = "none", disabled: Iterable[str] | str = (),
) -> str | None:
    """The final answer in ``text`` as a short span, or ``None`` when there is none.

    ``task`` is "math" for numeric answers (last-number fallback) and anything else ("qa") for
    short factual answers. ``question`` (optional) enables the copula rule for one-sentence
    QA replies. ``style`` "concise" or "sentence" reads only the first line that says something
    (after a lead-in such as "Sure, here it is:"), without a question echoed at its start.
    ``style="cot"`` marks a reasoning response: only an explicitly stated final
    answer (``\\boxed{}``, ``####``, "The answer is ...") counts, and an unmarked response
    (typically unfinished reasoning) gives ``None`` — unless ``unmarked`` names another rule:
    ``"stated"`` (QA only: the first sentence that restates the question and states an answer,
    "The capital of France is Paris."), ``"last_number"`` (the last number in the text, the old
    rule) or ``"first_sentence"`` (the rules for direct answers). ``disabled``: names of
    :data:`RULES` to switch off. Never raises on a ``str``; raises
    :class:`~semcal.errors.InputError` for a non-string input or an unknown rule name.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise InputError(f"extract_answer expects a string, got {type(text).__name__}")
    if unmarked not in UNMARKED_RULES:
        raise InputError(f"unmarked must be one of {', '.join(UNMARKED_RULES)}, got {unmarked!r}")
    off = check_disabled(disabled) if disabled else frozenset()
    t = text[:MAX_EXTRACT_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    r = Reading(text=t, math=task == "math", question=question, style=style, unmarked=unmarked,
                off=off)
    kind = "math" if r.math else "qa"
    for rule in _BY_STAGE["text"]:
        if rule.name not in off and rule.applies(kind, style, unmarked):
            narrowed = rule.fn(r)
            if narrowed is None:
                return None
            r.text = narrowed
    for rule in _BY_STAGE["find"]:
        if rule.name not in off and rule.applies(kind, style, unmarked):
            got = rule.fn(r)
            if got is not NEXT:
                return got
    return None


def clean_span(span: str, r: Reading, *, question: str | None) -> str | None:
    """One candidate span cleaned by the clean and final rules; None when nothing useful is
    left. ``question`` (None: no agent or copula cut) is the question the span answers."""
    c = Cleaning(math=r.math, question=question)
    kind = "math" if r.math else "qa"
    span = span.strip(_NO_DOT)
    for stage in ("clean", "final"):
        for rule in _BY_STAGE[stage]:
            if rule.name not in r.off and rule.applies(kind):
                got = rule.fn(span, c)
                if got is None:
                    return None
                span = got
        if stage == "clean":  # what the cleaning left at the ends
            span = span.lstrip(_lead(r.math)).rstrip(_STRIP_CHARS)
    return span.strip() or None


_NO_DOT = _STRIP_CHARS.replace(".", "")


def _lead(math: bool) -> str:
    """What is stripped from a span's start: for math not the point of ".5"."""
    return _NO_DOT if math else _STRIP_CHARS


def _stated_answer(text: str, question: str, r: Reading, max_sentences: int = 4) -> str | None:
    """The answer a reasoning reply states without a marker: the whole reply when it is a few
    words on one line ("Diana Rittman"), else the answer of the first of the first few
    sentences that names the agent of a "Who <verb>" question ("It was written by Harper
    Lee."), names the one year a "What year" question asks for, or is cut at its copula into
    a side that restates the question and a side that answers it ("The capital of France is
    Paris." -> "Paris"); None when no sentence does. The ``hedges``, ``agent``, ``year`` and
    ``copula`` rules switched off are left out here too."""
    whole = text.strip()
    if "\n" not in whole and len(whole.split()) <= SHORT_REPLY_WORDS:
        # a reply of a few words is an answer, not unfinished reasoning ("Diana Rittman")
        return clean_span(whole, r, question=question)
    rest = text
    for _ in range(max_sentences):
        rest = rest.lstrip()
        if not rest:
            return None
        sentence = first_sentence(rest)
        asks = rest[len(sentence): len(sentence) + 1] == "?"
        rest = rest[len(sentence) + 1:]
        sentence = sentence.strip().strip(_STRIP_CHARS)
        if asks:
            continue  # "Who wrote it?" restates the question, it answers nothing
        if r.on("agent"):
            plain = strip_hedges(sentence) if r.on("hedges") else sentence
            agent = agent_cut(plain, question)
            if agent != plain and len(agent.split()) <= 6:
                return clean_span(agent, r, question=None)  # "It was written by Harper Lee."
        if r.on("year") and asks_year(question) and restates(sentence, question):
            year = year_in(sentence, question)  # "In 2017, the first iPhone went on sale."
            if year is not None:
                return year
        if r.on("copula"):
            cut = copula_cut(sentence, question)
            # the other side must restate the question, the answer be short
            if (cut != sentence and restates(other_side(sentence, cut), question)
                    and len(cut.split()) <= 6):
                return clean_span(cut, r, question=None)
    return None
