"""Final-answer extraction: the short answer inside a one-word reply, a sentence, a paragraph or
a chain of thought.

``extract_answer(text, task)`` returns the answer span as written (not yet normalised), or
``None`` when the text holds no answer. The rules, tried in order:

1. cut "leftovers": a base model that answered a few-shot prompt often goes on with the next
   example ("42\\nQ: ..."), and chat models may leak end-of-turn tokens; everything from such a
   marker on is dropped;
2. the last ``\\boxed{...}`` (or ``\\fbox{...}``), with balanced braces;
3. the last GSM8K-style ``#### 42`` line;
4. the last answer marker: "The answer is ...", "Final answer: ...", "Answer: ...", "A: ...";
   the span after it runs to the end of its sentence (a marker followed by the prompt's
   placeholder, "The answer is X.", states nothing: the one before it is read);
5. otherwise, for ``task="math"``: a short first line as a whole ("3/4", "\\frac{3}{4}",
   "$1,200") or else the last number in the text; for other tasks: the first sentence of the
   first non-empty line.

Hedges at the start of a span ("I think it's", "It is", "Probably", "Well,") and decoration
(quotes, markdown bold, a final period) are removed: "I think it's Paris, France." gives
"Paris, France" — normalisation and alias matching deal with the rest. When ``question`` is
given, a one-sentence QA reply such as "The capital of France is Paris." is cut at its copula
and the side that does not repeat the question is kept ("Paris"); when neither side restates
the question and the other side is long ("Kyrgyzstan is a country located in Asia."), the reply
answers nothing. A question asking for a year ("In what year ...") is answered by the one
year its reply names ("In 2022, the war began." -> "2022").

Safety: the input is cut to :data:`MAX_EXTRACT_CHARS` characters, every regular expression is
free of nested quantifiers over overlapping classes, and brace matching is a single linear
scan, so a call costs linear time on any input. Model text is only ever read, never run.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from semcal.collapse.normalize import STOPWORDS
from semcal.errors import InputError

#: completions longer than this are cut before extraction (about 2,000 tokens)
MAX_EXTRACT_CHARS = 8000
#: a math reply whose first line is at most this long is taken whole (the parser decides)
SHORT_MATH_CHARS = 48

_LEFTOVER = re.compile(
    r"\n[ \t]*(?:Q|Question|Problem|Human|User|Input|Exercise)(?:[ \t]*\d{1,3})?[ \t]*[:：]"
    r"|<\|(?:im_end|endoftext|eot_id|end|user|assistant)\|>|<end_of_turn>|<start_of_turn>|</s>",
    re.IGNORECASE,
)
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*")
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
_MARKER = re.compile(
    r"(?:\b(?:the[ \t]+)?(?:(?:final|correct|short|best)[ \t]+)?answer(?:[ \t]+(?:to|for)[ \t]+(?:this|the|that|your|my)[ \t]+question)?(?:\*\*)?[ \t]*"
    r"(?:is|would[ \t]+be|should[ \t]+be|will[ \t]+be|=|:)"
    r"|^[ \t]*(?:\*\*)?A(?:\*\*)?[ \t]*:)",
    re.IGNORECASE | re.MULTILINE,
)
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
_TRAILING_HEDGE = re.compile(
    r"[ \t]*[,;(][ \t]*(?:i[ \t]+think|i[ \t]+believe|i[ \t]+guess|i[ \t]+suppose|i['’]m[ \t]+not[ \t]+sure"
    r"|i['’]m[ \t]+(?:pretty[ \t]+|fairly[ \t]+|quite[ \t]+)?(?:sure|certain|confident)"
    r"|probably|maybe|perhaps|if[ \t]+i[ \t]+recall|if[ \t]+i['’]m[ \t]+not[ \t]+mistaken)(?![\w'’]).*",
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
_APPOSITION = re.compile(r",[ \t]*(?:who|which|whom|whose|where|a|an|the)[ \t]", re.IGNORECASE)
_OPENING = re.compile(
    r"[ \t]*(?:in|on|at|during|after|before|since|by|from|for|as|with|although|while|when|if"
    r"|based|according|born|like|unlike|despite|because|today|now|yes|no)\b", re.IGNORECASE)
_PARENTHETICAL = re.compile(r"[ \t]*\([^()\n]{0,80}\)")
# abbreviations whose final period does not end a sentence
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "st", "mt", "jr", "sr", "vs", "no", "co", "inc", "ltd", "etc",
     "prof", "gen", "col", "lt", "sgt", "capt", "fig", "approx", "ft", "e.g", "i.e"}
)
_STRIP_CHARS = " \t\r\n*_`\"'“”‘’«»„.,;:!?"


#: what the prompts call the answer ("finish with 'The answer is X.'"): a model that repeats
#: the instruction states no answer
PLACEHOLDERS = frozenset({"X", "answer", "your answer", "final answer", "...", "…"})
#: a copula reply's answer side longer than this, with a side that does not restate the
#: question, is a sentence about something else (:func:`_weak_statement`)
WEAK_ANSWER_WORDS = 3
#: a reasoning reply of at most this many words, on one line, is read as a direct answer
SHORT_REPLY_WORDS = 4
#: styles whose answer comes first (only the first line that says something is read)
DIRECT_STYLES = ("concise", "sentence")
#: what a reasoning (``style="cot"``) response without an explicit final answer counts as
UNMARKED_RULES = ("none", "stated", "last_number", "first_sentence")
#: the rule the built-in Bs use: on the labelled benchmark it beat "none" in count and grade
#: error on both models' QA chains of thought (docs/collapse.md); for math it is "none"
DEFAULT_UNMARKED = "stated"


def extract_answer(
    text: str | None, task: str = "qa", *, question: str | None = None,
    style: str | None = None, unmarked: str = "none",
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
    rule) or ``"first_sentence"`` (the rules for direct answers). Never raises on a ``str``; raises
    :class:`~semcal.errors.InputError` for a non-string input.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise InputError(f"extract_answer expects a string, got {type(text).__name__}")
    if unmarked not in UNMARKED_RULES:
        raise InputError(f"unmarked must be one of {', '.join(UNMARKED_RULES)}, got {unmarked!r}")
    t = text[:MAX_EXTRACT_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    t = cut_leftovers(t)
    math = task == "math"
    if style in DIRECT_STYLES:
        # a direct answer comes first: later lines are chatter ("The answer is a few words")
        t = _direct_line(t)
        if t is None:
            return None

    boxed = last_boxed(t)
    if boxed is not None:
        return _finish(boxed, math, question=None)

    last_hash = None
    for m in _HASHES.finditer(t):
        last_hash = m
    if last_hash is not None:
        got = _finish(last_hash.group(1), math, question=None)
        if got is not None:
            return got

    # the last marker that states something; "The answer is X." repeats the prompt's
    # instruction (its placeholder), not an answer
    for m in reversed(list(_MARKER.finditer(t))):
        got = _finish(t[m.end():], math, question=None)
        if got is not None:
            return got

    if style == "cot" and unmarked != "first_sentence":
        if unmarked == "stated" and not math and question:
            return _stated_answer(t, question)
        if unmarked in ("none", "stated"):
            return None
        last_number = None
        for m in NUMBER_RE.finditer(t):
            last_number = m
        return None if last_number is None else last_number.group(0).replace(" ", "").replace("\t", "")
    first = _first_line(t)
    if first is None:
        return None
    if math:
        whole = t.strip()
        if (
            len(whole) <= SHORT_MATH_CHARS
            and "\n" not in whole
            and first_sentence(whole).rstrip(".!? ") == whole.rstrip(".!? ")
        ):
            return _finish(whole, True, question=None)  # a one-sentence reply: parse it whole
        last_number = None
        for m in NUMBER_RE.finditer(t):
            last_number = m
        if last_number is not None:
            return last_number.group(0).replace(" ", "").replace("\t", "")
        return None
    line = skip_question_echo(first)
    if question and asks_year(question):
        year = year_in(first_sentence(line), question)
        if year is not None:
            return year
    return _finish(line, False, question=question)


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


def _stated_answer(text: str, question: str, max_sentences: int = 4) -> str | None:
    """The answer a reasoning reply states without a marker: the whole reply when it is a few
    words on one line ("Diana Rittman"), else the answer of the first of the first few
    sentences that names the agent of a "Who <verb>" question ("It was written by Harper
    Lee."), names the one year a "What year" question asks for, or is cut at its copula into
    a side that restates the question and a side that answers it ("The capital of France is
    Paris." -> "Paris"); None when no sentence does."""
    whole = text.strip()
    if "\n" not in whole and len(whole.split()) <= SHORT_REPLY_WORDS:
        # a reply of a few words is an answer, not unfinished reasoning ("Diana Rittman")
        return _finish(whole, False, question=question)
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
        plain = strip_hedges(sentence)
        agent = _agent_cut(plain, question)
        if agent != plain and len(agent.split()) <= 6:
            return _finish(agent, False, question=None)  # "It was written by Harper Lee."
        if asks_year(question) and _restates(sentence, question):
            year = year_in(sentence, question)  # "In 2017, the first iPhone went on sale."
            if year is not None:
                return year
        m = _COPULA.search(sentence)
        if m is None:
            continue
        cut = _copula_cut(sentence, question)
        # the other side must restate the question, the answer be short
        if (cut != sentence and _restates(_other_side(sentence, cut), question)
                and len(cut.split()) <= 6):
            return _finish(cut, False, question=None)
    return None


def _direct_line(text: str) -> str | None:
    """The first non-empty line of a direct answer, past a lead-in line ending in ":" and a
    question echoed at its start."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return None
    first = lines[0]
    if first.rstrip(" *").endswith(":") and len(lines) > 1:
        first = lines[1]
    first = skip_question_echo(first)
    return None if is_question(first) else first


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


def _first_line(text: str) -> str | None:
    for line in text.split("\n"):
        if line.strip():
            return line
    return None


def _content_words(text: str) -> set[str]:
    words = (w.casefold() for w in _WORD.findall(unicodedata.normalize("NFKC", text)))
    return {w for w in words if w not in STOPWORDS}


def _copula_cut(span: str, question: str) -> str:
    m = _COPULA.search(span)
    if m is None:
        return span
    left, right = span[: m.start()], span[m.end():]
    c = _TRAILING_CLAUSE.search(right)
    if c is not None:
        right = right[: c.start()]
    if not left.strip() or not right.strip():
        return span
    q = _content_words(question)
    left_overlap = len(_content_words(left) & q)
    right_overlap = len(_content_words(right) & q)
    if left_overlap > right_overlap:
        return right
    if right_overlap > left_overlap:
        return left
    return span


def _weak_statement(span: str, cut: str, question: str) -> bool:
    """Whether a copula sentence says something long about the question's subject without
    restating the question ("Kyrgyzstan is a country located in the Asian part of Asia." for
    "What is the capital of Kyrgyzstan?"): the side kept as the answer has more than
    :data:`WEAK_ANSWER_WORDS` words and the other side shares fewer than two content words
    with the question. Such a sentence answers nothing."""
    if cut == span or len(cut.split()) <= WEAK_ANSWER_WORDS or len(_content_words(question)) < 2:
        return False
    return not _restates(_other_side(span, cut), question)


def _other_side(sentence: str, cut: str) -> str:
    """The side of a copula ``sentence`` that is not its answer ``cut`` (as
    :func:`_copula_cut` made it: the right side, perhaps shortened, or the whole left side)."""
    m = _COPULA.search(sentence)
    if m is None:
        return ""
    left, right = sentence[: m.start()], sentence[m.end():]
    return left if right.startswith(cut) else right


def _restates(text: str, question: str) -> bool:
    """Whether ``text`` restates the question: it shares two of its content words."""
    return len(_content_words(text) & _content_words(question)) >= 2


_WHO_VERB = re.compile(r"^[\s*\"'“]*who[ \t]+([a-z]+)\b", re.IGNORECASE)
_BY_AGENT = re.compile(r"[ \t]by[ \t]+(?=\S)", re.IGNORECASE)
_AGENT_END = re.compile(
    r"[ \t](?:is|was|are|were|has|had|have|in|on|at|from|who|which|that|and)[ \t]|[,;:(]",
    re.IGNORECASE)
_NOT_AGENT_VERBS = frozenset({"is", "was", "are", "were", "has", "had", "have", "does", "did",
                              "do", "can", "could", "would", "will", "should", "may", "might"})


def _agent_cut(span: str, question: str) -> str:
    """For a "Who <verb> ...?" question, the agent of a reply that names it: "Richard Rogers
    painted the triptych" -> "Richard Rogers" (the words before the question's verb, when
    the words after it restate the question), "Madame Bovary by Mary Amalier" and "written
    by Gustave Flaubert" -> the name after "by" (when what comes before it restates the
    question or is a participle). Anything else is returned as it is."""
    m = _WHO_VERB.match(question)
    if m is None or m.group(1).casefold() in _NOT_AGENT_VERBS:
        return span
    verb = m.group(1).casefold()
    q = _content_words(question) - {verb}
    v = re.search(rf"(?<![\w-]){re.escape(verb)}(?![\w-])", span, re.IGNORECASE)
    if v is not None and v.start() > 0:
        left, right = span[: v.start()].strip(), span[v.end():]
        rest = _content_words(right)
        says_it = rest & q or (not rest and len(right.split()) <= 3)  # "... wrote it."
        if left and len(left.split()) <= 6 and says_it and not _content_words(left) & q:
            return left
    b = _BY_AGENT.search(span)
    if b is not None:
        before, agent = span[: b.start()], span[b.end():]
        e = _AGENT_END.search(agent)  # "Dario Roederman is the sole ..." -> "Dario Roederman"
        if e is not None:
            agent = agent[: e.start()]
        words = before.split()
        participle = len(words) == 1 and words[0].casefold().endswith(("ed", "en", "ote"))
        if agent.strip() and len(words) <= 10 and (participle or _content_words(before) & q):
            return agent
    return span


def _finish(span: str, math: bool, *, question: str | None) -> str | None:
    """Clean one candidate span; None when nothing useful is left."""
    no_dot = _STRIP_CHARS.replace(".", "")
    lead = no_dot if math else _STRIP_CHARS  # keep the point of ".5"
    span = span.strip(no_dot)
    span = strip_hedges(span)
    span = span.lstrip(lead)
    if not math:
        span = _PARENTHETICAL.sub("", span)  # "sodium (Na)" -> "sodium"
    span = first_sentence(span)
    if not math:
        span = _TRAILING_HEDGE.sub("", span)  # "Paris, I think" -> "Paris"
    if question and not math:
        cut = _agent_cut(span, question)
        if cut == span:
            cut = _copula_cut(span, question)
            if _weak_statement(span, cut, question):
                return None
        span = cut
    if not math:
        # "Mike Ellis, who developed ...", "Havana, the capital of Cuba" -> the name (not after
        # an opening phrase: "In Argentina, the main language is Spanish")
        c = _APPOSITION.search(span)
        if c is not None and c.start() > 0 and not _OPENING.match(span):
            span = span[: c.start()]
    span = span.lstrip(lead).rstrip(_STRIP_CHARS)
    if math:
        span = span.strip("$ ")
        while span.startswith("\\(") and span.endswith("\\)") and len(span) >= 4:
            span = span[2:-2].strip()
    span = span.strip()
    if span.strip("[]<>{}()\"'") in PLACEHOLDERS or span.startswith("X. "):
        return None  # the prompt's placeholder repeated: "The answer is X."
    return span or None


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
