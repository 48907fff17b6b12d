"""The judge as a chooser: candidate answers cut from a response, and the judge picks one.

The extracting judge (``extract-v1``/``-v2``) writes a short answer in its own words, and
about one reply in six named something the response does not contain (a corrected spelling,
the right answer from the judge's own knowledge), which sends the response back to the rules.
Here the judge writes only a number: the response is cut into candidate phrases by plain text
rules, the judge sees them numbered, and replies with the number of the final answer the
response gives, or 0 when it gives none. Every label it can give is a phrase of the response.

Candidates, in the order they occur in the response (a long chain of thought contributes its
last :data:`TAIL_CHARS` characters only, plus the rule-based B's span wherever it lies):

- the span the rule-based B extracts (:meth:`~semcal.collapse.exact.ExactCollapse.span`);
- math: every number (one per value);
- otherwise: runs of capitalised words ("Port Alba", "Leonardo da Vinci"; a single word that
  opens a sentence is not taken for a name), numbers, each side of a copula sentence's
  "is/was/are/were" when short, and the first line when it has at most :data:`SHORT_WORDS`
  words.

A phrase whose words all occur in the question is dropped ("France" for "What is the capital
of France?"); phrases are de-duplicated by their label (normalised text or, for math, value)
and at most :data:`MAX_CANDIDATES` are kept, the rule-based span always among them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from semcal.collapse.normalize import STOPWORDS, normalize_answer
from semcal.collapse.spans import NUMBER_RE, content_words
from semcal.types import Message, Prompt

#: most candidates shown to the judge for one response
MAX_CANDIDATES = 8
#: a reasoning response is cut into candidates from its last this many characters
TAIL_CHARS = 700
#: a response of at most this many words is a candidate as a whole
SHORT_WORDS = 5
#: a copula side of at most this many words is a candidate
SIDE_WORDS = 6

# a run of capitalised words, with the small lower-case words that join names inside it
_NAME_WORD = r"[^\W\d_a-z](?:[\w'’-]*[\w'’]|\.)?"  # "Alba", "O'Neil", an initial "J."
_NAME_RUN = re.compile(
    rf"(?<![\w'’]){_NAME_WORD}"
    r"(?:[ \t]+(?:(?:of|de|da|del|der|di|du|van|von|la|le|the|and|y|bin|al)[ \t]+)?"
    rf"{_NAME_WORD})*"
)
#: phrases that name the answer's place, not an answer ("The answer is 19": its left side)
_NOT_ANSWERS = frozenset({"answer", "final answer", "short answer", "result", "solution",
                          "correct answer", "answer to the question",
                          "i", "he", "she", "it", "we", "they", "you", "this", "that"})
_COPULA_SIDES = re.compile(r"([^.!?\n:;]{1,120}?)[ \t](?:is|was|are|were)[ \t]([^.!?\n;,(]{1,120})",
                           re.IGNORECASE)
_LEADING_SMALL = re.compile(r"^(?:(?:the|a|an|its|his|her|their|this|that|it)[ \t]+)+", re.IGNORECASE)
_EDGE = " \t\r\n*_`\"'“”‘’«»„.,;:!?()[]"


def _tidy(phrase: str) -> str:
    return _LEADING_SMALL.sub("", phrase.strip(_EDGE)).strip(_EDGE)


def _asked(phrase: str, question: str) -> bool:
    """Whether every content word of ``phrase`` is a word of the question (or it has none)."""
    words = content_words(phrase)
    return not words or words <= content_words(question)


def _spots(text: str, math: bool) -> list[tuple[int, str]]:
    """(position, phrase) of every candidate the text rules cut from ``text``."""
    spots = [(m.start(), m.group(0)) for m in NUMBER_RE.finditer(text)
             if not (m.start() and text[m.start() - 1].isalpha())]  # not the 2 of "B2"
    if math:
        return spots
    spots += [(m.start(), m.group(0)) for m in _NAME_RUN.finditer(text)
              if " " in m.group(0).strip() or not _opens_sentence(text, m.start())]
    for m in _COPULA_SIDES.finditer(text):
        for g in (1, 2):
            side = _tidy(m.group(g))
            if side and len(side.split()) <= SIDE_WORDS:
                spots.append((m.start(g), side))
    first = next((ln for ln in text.split("\n") if ln.strip()), "")
    # a short reply, or a short first line (one with a copula gave its sides already)
    if 0 < len(first.split()) <= SHORT_WORDS and not _COPULA_SIDES.search(first):
        spots.append((text.find(first), first))
    return spots


def _opens_sentence(text: str, at: int) -> bool:
    """Whether the word at ``at`` is the first of its sentence (then its capital letter is no
    sign of a name: "My", "Largest", "If")."""
    before = text[:at].rstrip(" \t\"'“‘(*_")
    return not before or before[-1] in ".!?:\n"


def candidate_spans(question: str, response: str, *, math: bool, rule_span: str | None,
                    label: Callable[[str], str], cot: bool = False) -> list[str]:
    """The candidate answers of one response, in the order they occur in it (see the module
    docstring). ``label`` maps a phrase to its class label (equal labels: one candidate);
    ``rule_span``: the rule-based B's span (None: it found none), always kept."""
    text = response[-TAIL_CHARS:] if cot and len(response) > TAIL_CHARS else response
    offset = len(response) - len(text)
    spots = [(p + offset, _tidy(s) if not math else s.strip(_EDGE)) for p, s in _spots(text, math)]
    if rule_span:
        at = response.rfind(rule_span)
        spots.append((at if at >= 0 else len(response), rule_span.strip(_EDGE)))
    spots.sort(key=lambda x: x[0])
    seen: dict[str, str] = {}
    for _, phrase in spots:
        if not phrase or (not math and _asked(phrase, question) and phrase != rule_span):
            continue
        if not math and (phrase.casefold() in STOPWORDS or phrase.casefold() in _NOT_ANSWERS):
            continue
        lab = label(phrase)
        if lab and lab not in seen:
            seen[lab] = phrase
    out = list(seen.values())
    if len(out) > MAX_CANDIDATES:  # keep the last ones (an answer comes at the end), and B's
        keep = out[-MAX_CANDIDATES:]
        rule = next((p for p in out if rule_span and p == rule_span.strip(_EDGE)), None)
        if rule is not None and rule not in keep:
            keep = [rule] + keep[1:]
            keep.sort(key=out.index)
        out = keep
    return out


# ----------------------------------------------------------------------------- the prompt

CHOOSE_INSTRUCTIONS = (
    "You will see a question, a response that someone else wrote, and a numbered list of "
    "phrases cut from that response. Reply with the number of the phrase that is the final "
    "answer the response gives to the question. Keep the response's answer even if it is "
    "wrong. Reply 0 if the response gives no answer to this question: it refuses, only repeats "
    "the question, talks about something else, or stops before it answers. Reply with the "
    "number only."
)

#: worked examples: (question, response, the chosen phrase or "" for 0, math). Written for this
#: prompt, about invented places and people; none comes from a labelled set or bundled data.
CHOOSE_EXAMPLES: tuple[tuple[str, str, str, bool], ...] = (
    ("What is the capital of Freedonia?",
     "The capital of Freedonia is Port Alba, a city on the coast.", "Port Alba", False),
    ("A baker fills 4 trays with 6 rolls each and sells 5 rolls. How many rolls are left?",
     "4 trays x 6 rolls = 24 rolls. She sells 5, so 24 - 5 = 19. The answer is 19.", "19", True),
    ("Who wrote the novel The Glass Orchard?",
     "The Glass Orchard is a quiet novel set in a small village in Wales.", "", False),
    ("Which river flows through the capital of Tarvania?",
     "Tarvania is a mountain country. Its capital, Velm, lies on the river Oska.", "Oska", False),
)


def choice_block(question: str, response: str, candidates: Sequence[str]) -> str:
    lines = "\n".join(f"{i}. {c}" for i, c in enumerate(candidates, 1))
    return (f"Question: {question.strip()}\nResponse: {response}\nPhrases:\n{lines}\n"
            "0. (no answer)\nNumber:")


def build_choice_prompt(question: str, response: str, candidates: Sequence[str], *, chat: bool,
                        examples: Sequence[tuple[str, str, Sequence[str], int]]) -> Prompt:
    """The choosing prompt for one response; ``examples``: (question, response, candidates,
    the right number) worked examples, as chat turns or few-shot text."""
    query = choice_block(question, response, candidates)
    if chat:
        turns = [Message("system", CHOOSE_INSTRUCTIONS)]
        for q, r, c, k in examples:
            turns += [Message("user", choice_block(q, r, c)), Message("assistant", str(k))]
        turns.append(Message("user", query))
        return Prompt(messages=tuple(turns))
    shots = "\n\n".join(f"{choice_block(q, r, c)} {k}" for q, r, c, k in examples)
    return Prompt(text=f"{CHOOSE_INSTRUCTIONS}\n\n{shots}\n\n{query}")


_FIRST_INT = re.compile(r"\d+")


def parse_choice(reply: str, n: int) -> int | None:
    """The number in a choosing judge's reply: 0 (no answer) to ``n``; None when the reply
    holds no such number (an invalid reply)."""
    if not isinstance(reply, str):
        return None
    m = _FIRST_INT.search(reply[:200])
    if m is None or len(m.group(0)) > 3:
        return None
    k = int(m.group(0))
    return k if 0 <= k <= n else None


def label_text(phrase: str) -> str:
    """The QA label of a phrase (normalised text)."""
    return normalize_answer(phrase)
