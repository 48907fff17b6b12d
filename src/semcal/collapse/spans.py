"""The pieces that answer extraction is made of: few-shot leftovers, ``\\boxed{}``, hedges,
sentence ends, numbers, years, questions echoed or asked, refusals, the copula and agent cuts of
a one-sentence reply, and whether a reply names something.

Each is a small pure function of a string; the extraction rules (:data:`semcal.collapse.extract.RULES`)
are built from them, and other Bs use a few (the judge B: :func:`cut_leftovers`,
:func:`strip_hedges`, :data:`NUMBER_RE`; every rule-based B: :func:`is_refusal`).

Safety: every regular expression here is free of nested quantifiers over overlapping classes,
and brace matching is a single linear scan, so each call costs linear time on any input; the
callers cut their input to :data:`MAX_EXTRACT_CHARS` first. Model text is only ever read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from semcal.collapse.normalize import STOPWORDS

#: completions longer than this are cut before extraction (about 2,000 tokens)
MAX_EXTRACT_CHARS = 8000

_LEFTOVER = re.compile(
    r"\n[ \t]*(?:Q|Question|Problem|Human|User|Input|Exercise)(?:[ \t]*\d{1,3})?[ \t]*[:：]"
    r"|<\|(?:im_end|endoftext|eot_id|end|user|assistant)\|>|<end_of_turn>|<start_of_turn>|</s>",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_HEDGE = re.compile(
    r"^(?:i[ \t]+(?:think|believe|guess|suppose|would[ \t]+say)|i['’]d[ \t]+say"
    r"|i['’]m[ \t]+(?:pretty[ \t]+|fairly[ \t]+|quite[ \t]+)?(?:sure|certain|confident)"
    r"|i[ \t]+am[ \t]+(?:pretty[ \t]+|fairly[ \t]+|quite[ \t]+)?(?:sure|certain|confident)"
    r"|probably|maybe|perhaps|possibly|likely|most[ \t]+likely|definitely|certainly|surely"
    r"|well|hmm+|so|ok|okay|yes|sure|of[ \t]+course|i[ \t]+believe[ \t]+that"
    r"|it(?:'s|’s|[ \t]+is|[ \t]+was|[ \t]+would[ \t]+be|[ \t]+must[ \t]+be)"
    r"|that(?:'s|’s|[ \t]+is|[ \t]+was)|this[ \t]+is|that|the[ \t]+answer[ \t]+is)"
    r"(?![\w'’])[ \t]*[,:]?[ \t]*",
    re.IGNORECASE,
)
_DANGLING = re.compile(r"(?:it|that|this|the[ \t]+answer)(?![\w])", re.IGNORECASE)
#: a number: thousands commas, decimals, a fraction, and a power of ten in any of the usual
#: spellings ("6.02e23", "6.02E+23", "3 x 10^8", "3×10⁸", "1.6 * 10**-19"), so that the power is
#: never cut off and read as the number ("1.5e23" is not "23")
NUMBER_RE = re.compile(
    r"[-−]?\d+(?:,\d{3})*(?:\.\d+)?"
    r"(?:[eE][-+−]?\d+(?![\w])"
    r"|[ \t]*[×xX*·⋅][ \t]*10[ \t]*(?:\^|\*\*)[ \t]*(?:\{[ \t]*[-+−]?\d+[ \t]*\}|\([ \t]*[-+−]?\d+[ \t]*\)|[-+−]?\d+)"
    r"|[ \t]*[×xX*·⋅][ \t]*10[⁻⁺]?[⁰¹²³⁴⁵⁶⁷⁸⁹]+)?"
    r"(?:[ \t]*/[ \t]*\d+)?"
)
_WORD = re.compile(r"[^\W_]+")
_COPULA = re.compile(r"[ \t](?:is|was|are|were)[ \t]", re.IGNORECASE)
_TRAILING_CLAUSE = re.compile(r",[ \t]*(?:which|who|whom|whose|where|when|and|but|not)\b", re.IGNORECASE)
# abbreviations whose final period does not end a sentence
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "mt", "jr", "sr", "vs", "no", "co", "inc", "ltd", "etc",
     "prof", "gen", "col", "lt", "sgt", "capt", "fig", "approx", "ft", "e.g", "i.e"}
)
#: a copula reply's answer side longer than this, with a side that does not restate the
#: question, is a sentence about something else (:func:`weak_statement`)
WEAK_ANSWER_WORDS = 3


_ECHO = re.compile(r"[^?!.\n]{0,300}\?[ \t]+(?=\S)")


_ASKS_YEAR = re.compile(r"^[\s*\"'“]*(?:in|by|during|from|since|until)?[ \t]*(?:what|which)[ \t]+year\b",
                        re.IGNORECASE)
_ERA = r"(B\.?[ \t]?C[.E]*|A\.?[ \t]?D\.?|C\.?E\.?)(?![A-DF-Za-df-z])"
# a year: 3-4 digits, or 1-4 digits with an era ("79 CE"); not a count ("196 months")
_YEAR = re.compile(
    r"(?<![\w.,])(?:(\d{1,4})[ \t]*" + _ERA + r"|(\d{3,4})(?![\w]|[.,]\d)(?![ \t]+(?:months?|weeks?|days?"
    r"|hours?|minutes?|seconds?|years?|people|persons|km|kilometers?|kilometres?|miles?|meters?"
    r"|metres?|feet|ft|kg|tons?|times|percent|%)\b))",
    re.IGNORECASE)


def asks_year(question: str) -> bool:
    """Whether ``question`` asks for a year ("In what year ...", "Which year ...")."""
    return _ASKS_YEAR.match(question) is not None


def year_in(sentence: str, question: str) -> str | None:
    """The one year a sentence names ("In 2022, World War I began." -> "2022", "5700 B.C." ->
    "5700 BC"), not counting numbers of the question itself; None when it names none or
    several different ones."""
    own = set(re.findall(r"\d+", question))
    found = set()
    for m in _YEAR.finditer(sentence):
        number = m.group(1) or m.group(3)
        if number in own:
            continue
        era = (m.group(2) or "").upper().replace(".", "").replace(" ", "").replace("\t", "")
        found.add(number + (" BC" if era.startswith("BC") else ""))
    return found.pop() if len(found) == 1 else None


def skip_question_echo(line: str) -> str:
    """Drop leading sentences that are questions: "What is the capital of Turkey? It is
    Istanbul." -> "It is Istanbul." (a reply that is only a question is kept as it is)."""
    for _ in range(4):
        m = _ECHO.match(line)
        if m is None:
            break
        line = line[m.end():]
    return line


_REFUSAL = re.compile(
    r"^[\s*\"'“]*(?:(?:i['’]?m|i[ \t]+am)[ \t]+(?:so[ \t]+|very[ \t]+)?sorry|sorry|apologies|unfortunately"
    r"|i[ \t]+(?:really[ \t]+)?(?:do[ \t]+not|don['’]?t|honestly[ \t]+don['’]?t)[ \t]+(?:know|have|recall|remember)"
    r"|(?:i['’]?m|i[ \t]+am)[ \t]+(?:not[ \t]+(?:sure|certain|aware|able)|unable|unsure)"
    r"|i[ \t]+(?:cannot|can['’]?t|could[ \t]+not|couldn['’]?t|am[ \t]+unable[ \t]+to)"
    r"|as[ \t]+an[ \t]+(?:ai|a\.i\.|language[ \t]+model)"
    r"|(?:there[ \t]+is|there['’]s)[ \t]+no[ \t]+(?:way|known|definitive|single|information|record|answer)"
    r"|(?:it[ \t]+is|it['’]s|that[ \t]+is|this[ \t]+is)[ \t]+(?:unknown|not[ \t]+known|unclear|impossible[ \t]+to)"
    r"|unknown[ \t.!]*$|no[ \t]+one[ \t]+knows|nobody[ \t]+knows|not[ \t]+enough[ \t]+information|no[ \t]+idea"
    r"|(?:the[ \t]+)?answer[ \t]+is[ \t]+(?:unknown|not[ \t]+known|not[ \t]+available|unavailable))(?![\w])",
    re.IGNORECASE,
)
# a refusal phrase followed by an answer after all: "I'm not sure, but I think it's Paris"
_UNREFUSE = re.compile(
    r"\b(?:but|however)\b[ \t,]*(?:i[ \t]+(?:think|believe|guess|would[ \t]+say)|i['’]d[ \t]+say"
    r"|(?:it|that|the[ \t]+answer)[ \t]+(?:is|was|might[ \t]+be|may[ \t]+be|could[ \t]+be|would[ \t]+be)"
    r"|probably|maybe|perhaps|my[ \t]+(?:best[ \t]+)?guess)"
    r"|\b(?:the[ \t]+)?(?:final[ \t]+)?answer[ \t]+(?:is|would[ \t]+be)[ \t]+(?!unknown|not)\w",
    re.IGNORECASE,
)


# "The author of the novel is unknown." / "... cannot be answered": a first sentence that says
# the answer is not to be had
_UNKNOWN = re.compile(
    r"\b(?:is|are|was|remains)[ \t]+(?:unknown|not[ \t]+known|unspecified|undetermined|not[ \t]+available"
    r"|unavailable)\b|\bcannot[ \t]+be[ \t]+(?:answered|determined)\b|^[ \t]*(?:undetermined|unspecified)\b",
    re.IGNORECASE,
)


def is_refusal(text: str | None) -> bool:
    """True when a response declines to answer: "I'm sorry, I don't know.", "As an AI ...",
    "Unknown.", "The author of the novel is unknown.". A refusal phrase followed by an answer after all ("I'm not sure, but I think
    it's Paris") is not a refusal. Only the start of the text (its first 400 characters after
    few-shot leftovers are cut) is read."""
    if not isinstance(text, str):
        return False
    head = cut_leftovers(text[:MAX_EXTRACT_CHARS])[:400].lstrip()
    if _REFUSAL.match(head) is None and _UNKNOWN.search(first_sentence(head)) is None:
        return False
    return _UNREFUSE.search(head) is None


def cut_leftovers(text: str) -> str:
    """Drop everything from the first few-shot leftover ("\\nQ: ...") or end-of-turn token on."""
    m = _LEFTOVER.search(text)
    return text[: m.start()] if m else text


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` in ``text`` (balanced braces), or None.

    ``\\boxed 5`` without braces gives "5". An unclosed brace gives the rest of the line.
    """
    last = None
    for m in _BOXED.finditer(text):
        last = m
    if last is None:
        return None
    i = last.end()
    if i >= len(text):
        return None
    if text[i] != "{":
        token = re.match(r"[^\s$]+", text[i:])
        return token.group(0) if token else None
    depth = 0
    for j in range(i, len(text)):
        ch = text[j]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    rest = text[i + 1 :]
    return rest.split("\n", 1)[0]


def strip_hedges(span: str) -> str:
    """Remove leading hedges: "I think it's Paris" -> "Paris" (at most 6 rounds)."""
    for _ in range(6):
        m = _HEDGE.match(span)
        if not m or m.end() == 0:
            break
        if m.end() >= len(span):
            # "It is." or "The answer is" says nothing; a lone "Yes" or "Maybe" is an answer
            return "" if _DANGLING.match(span) else span
        span = span[m.end():]
    return span


_SENTENCE_MARK = re.compile(r"[\n.!?]")
_NEXT_WORD = re.compile(r"\s+([^\W\d_]+)")
# words that open a sentence and are not a name: after "K." they mean the sentence ended
_SENTENCE_OPENERS = frozenset(
    {"the", "a", "an", "it", "its", "this", "that", "these", "those", "there", "to", "in", "i",
     "we", "you", "he", "she", "they", "so", "but", "and", "however", "therefore", "thus",
     "also", "as", "for", "if", "when", "my", "our", "your", "note", "step", "answer", "finally"})


def first_sentence(span: str) -> str:
    """``span`` up to its first sentence end (". ", "! ", "? " or a newline).

    A period inside a number ("3.5"), after a single capital ("D.C.", "J. K. Rowling") or after
    a common abbreviation ("Mt. Everest") does not end a sentence.
    """
    n = len(span)
    for m in _SENTENCE_MARK.finditer(span):  # only the places a sentence can end
        i = m.start()
        ch = span[i]
        if ch == "\n":
            return span[:i]
        nxt = span[i + 1] if i + 1 < n else ""
        if nxt and not nxt.isspace():
            continue  # "3.5", "D.C", "e.g."
        if ch == ".":
            j = i
            while j > 0 and (span[j - 1].isalpha() or span[j - 1] == "."):
                j -= 1
            word = span[j:i].casefold()
            if len(word) == 1 and word.isalpha() and span[j].isupper():
                after = _NEXT_WORD.match(span, i + 1)
                if (not span[:j].strip() or after is None
                        or after.group(1).casefold() not in _SENTENCE_OPENERS):
                    continue  # an initial ("J. K. Rowling") or a list letter ("A. The ..."),
                    # not the end of "... is K. To ..."
            if word in _ABBREVIATIONS or ("." in word and len(word) <= 6):
                continue
        return span[:i]
    return span



_ASKING = re.compile(
    r"^[\s*\"'“]*(?:who|whom|whose|what|which|when|where|why|how|is|are|was|were|do|does|did"
    r"|can|could|would|should|will|shall|may|has|have|had|in[ \t]+(?:what|which)"
    r"|on[ \t]+(?:what|which))\b",
    re.IGNORECASE,
)


def is_question(line: str) -> bool:
    """Whether a reply line is itself a question ("In what year was ... fought?", "Can you
    please specify?"): it opens with a question word or an auxiliary verb and ends with "?".
    A hedged one-word answer ("Paris?") is not."""
    line = line.strip().rstrip(" *\"'”")
    return line.endswith("?") and _ASKING.match(line) is not None



def content_words(text: str) -> set[str]:
    words = (w.casefold() for w in _WORD.findall(unicodedata.normalize("NFKC", text)))
    return {w for w in words if w not in STOPWORDS}


def copula_cut(span: str, question: str) -> str:
    m = _COPULA.search(span)
    if m is None:
        return span
    left, right = span[: m.start()], span[m.end():]
    c = _TRAILING_CLAUSE.search(right)
    if c is not None:
        right = right[: c.start()]
    if not left.strip() or not right.strip():
        return span
    q = content_words(question)
    left_overlap = len(content_words(left) & q)
    right_overlap = len(content_words(right) & q)
    if left_overlap > right_overlap:
        return right
    if right_overlap > left_overlap:
        return left
    return span


def weak_statement(span: str, cut: str, question: str) -> bool:
    """Whether a copula sentence says something long about the question's subject without
    restating the question ("Kyrgyzstan is a country located in the Asian part of Asia." for
    "What is the capital of Kyrgyzstan?"): the side kept as the answer has more than
    :data:`WEAK_ANSWER_WORDS` words and the other side shares fewer than two content words
    with the question. Such a sentence answers nothing."""
    if cut == span or len(cut.split()) <= WEAK_ANSWER_WORDS or len(content_words(question)) < 2:
        return False
    return not restates(other_side(span, cut), question)


def other_side(sentence: str, cut: str) -> str:
    """The side of a copula ``sentence`` that is not its answer ``cut`` (as
    :func:`copula_cut` made it: the right side, perhaps shortened, or the whole left side)."""
    m = _COPULA.search(sentence)
    if m is None:
        return ""
    left, right = sentence[: m.start()], sentence[m.end():]
    return left if right.startswith(cut) else right


def restates(text: str, question: str) -> bool:
    """Whether ``text`` restates the question: it shares two of its content words."""
    return len(content_words(text) & content_words(question)) >= 2


_WHO_VERB = re.compile(r"^[\s*\"'“]*who[ \t]+([a-z]+)\b", re.IGNORECASE)
_BY_AGENT = re.compile(r"[ \t]by[ \t]+(?=\S)", re.IGNORECASE)
_AGENT_END = re.compile(
    r"[ \t](?:is|was|are|were|has|had|have|in|on|at|from|who|which|that|and)[ \t]|[,;:(]",
    re.IGNORECASE)
_NOT_AGENT_VERBS = frozenset({"is", "was", "are", "were", "has", "had", "have", "does", "did",
                              "do", "can", "could", "would", "will", "should", "may", "might"})


def agent_cut(span: str, question: str) -> str:
    """For a "Who <verb> ...?" question, the agent of a reply that names it: "Richard Rogers
    painted the triptych" -> "Richard Rogers" (the words before the question's verb, when
    the words after it restate the question), "Madame Bovary by Mary Amalier" and "written
    by Gustave Flaubert" -> the name after "by" (when what comes before it restates the
    question or is a participle). Anything else is returned as it is."""
    m = _WHO_VERB.match(question)
    if m is None or m.group(1).casefold() in _NOT_AGENT_VERBS:
        return span
    verb = m.group(1).casefold()
    q = content_words(question) - {verb}
    v = re.search(rf"(?<![\w-]){re.escape(verb)}(?![\w-])", span, re.IGNORECASE)
    if v is not None and v.start() > 0:
        left, right = span[: v.start()].strip(), span[v.end():]
        rest = content_words(right)
        says_it = rest & q or (not rest and len(right.split()) <= 3)  # "... wrote it."
        if left and len(left.split()) <= 6 and says_it and not content_words(left) & q:
            return left
    b = _BY_AGENT.search(span)
    if b is not None:
        before, agent = span[: b.start()], span[b.end():]
        e = _AGENT_END.search(agent)  # "Dario Roederman is the sole ..." -> "Dario Roederman"
        if e is not None:
            agent = agent[: e.start()]
        words = before.split()
        participle = len(words) == 1 and words[0].casefold().endswith(("ed", "en", "ote"))
        if agent.strip() and len(words) <= 10 and (participle or content_words(before) & q):
            return agent
    return span



_CAPITALISED = re.compile(r"(?<![\w'’])[^\W\d_a-z][\w'’-]*")


_LEADING_ARTICLE = re.compile(r"^[\s\"'“]*(?:the|a|an)[ \t]+", re.IGNORECASE)


def expects_name(answers: Sequence[str]) -> bool:
    """Whether every gold alias is a name: it starts with a capital letter after a leading
    article ("Paris", "the Nile", "O-", "K") or holds a capitalised word ("da Vinci", "van
    Gogh"). Then the question asks for a name. "100 °C" (a unit symbol), "carbon", "vitamin D"
    or a list with one such alias do not."""
    def capitalised(alias: str) -> bool:
        rest = _LEADING_ARTICLE.sub("", alias).lstrip(" \t\"'“")
        return rest[:1].isupper() or any(w[:1].isupper() and w[1:2].islower() for w in rest.split())

    return bool(answers) and all(capitalised(a) for a in answers)


def names_something(span: str, text: str) -> bool:
    """Whether ``span`` (the answer extracted from ``text``) has a capitalised word that is
    not a function word ("Paris", "K", "Cuba"; not "a city/region", "the ocean"). A ``text``
    written without any capital letter ("ho chi minh city, vietnam") carries no sign of what
    is a name, so it always passes."""
    if not any(ch.isupper() for ch in text):
        return True
    for m in _CAPITALISED.finditer(span):
        w = m.group(0).casefold().rstrip("'’-")
        if w not in STOPWORDS and w not in _SENTENCE_OPENERS:
            return True
    return False
