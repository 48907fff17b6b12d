"""Text normalisation for short answers (the SQuAD / TriviaQA convention, written anew).

``normalize_answer("The  Eiffel Tower!")`` -> ``"eiffel tower"``. Steps, in order:

1. zero-width characters (U+200B, U+200C, U+200D, U+2060, U+FEFF) are removed ("R\\u200bome" is
   "Rome"), then Unicode NFKC (full-width letters, ligatures, non-breaking spaces become plain);
2. lower case (``str.casefold``, so "Straße" matches "STRASSE");
3. optionally strip accents ("Café" -> "cafe"; on by default);
4. thousands separators inside numbers are removed ("1,000" -> "1000", "1,234,567" -> "1234567");
5. punctuation and symbols become spaces, except a decimal point between digits ("3.5" stays);
6. the articles "a", "an", "the" are dropped as whole words (a reply that is only "A" keeps it:
   the letter, not the article);
7. runs of whitespace collapse to one space; leading/trailing space is stripped.

All functions here are pure, linear-time and never raise on any ``str`` input; inputs longer
than :data:`MAX_NORMALIZE_CHARS` are truncated first so a runaway completion stays cheap.
"""

from __future__ import annotations

import re
import unicodedata

#: longest text normalised; longer inputs are cut (short answers are far shorter)
MAX_NORMALIZE_CHARS = 2000

_ARTICLES = frozenset({"a", "an", "the"})
#: function words and question words: never an answer on their own, and no sign that a reply
#: restates its question (extraction compares a reply's other words with the question's; the
#: containment merge of the default B never takes one of them, or of the question, for an answer)
STOPWORDS = frozenset(
    {"the", "a", "an", "of", "in", "on", "at", "to", "for", "by", "with", "and", "or", "is",
     "was", "are", "were", "be", "what", "which", "who", "whom", "whose", "when", "where",
     "why", "how", "did", "does", "do", "that", "this", "it", "its", "as", "from", "name"}
)
# a digit group with thousands separators: 1,000 or 12,345,678 (not 1,2 or 1,23)
_THOUSANDS = re.compile(r"(?<![\d,])(\d{1,3})((?:,\d{3})+)(?![\d,])")
# a decimal point between two digits, protected during punctuation stripping
_DECIMAL = re.compile(r"(?<=\d)\.(?=\d)")
_DOT_MARK = "\x00"
_ASCII_DROPPED = re.compile("[^a-z0-9\x00]")
# invisible characters that join or separate nothing a reader sees: dropped, not made a space
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def strip_accents(text: str) -> str:
    """Remove combining marks: "Café Müller" -> "Cafe Muller"."""
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", kept)


def remove_thousands_separators(text: str) -> str:
    """ "1,000" -> "1000", "12,345,678" -> "12345678"; "1,2" and "3, 4" are left alone."""
    return _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)


def _is_kept_char(ch: str) -> bool:
    cat = unicodedata.category(ch)
    # letters, marks and numbers are kept; punctuation (P*), symbols (S*), controls,
    # separators and unassigned code points become spaces
    return cat[0] in ("L", "M", "N") or ch == _DOT_MARK


def normalize_answer(text: str, *, accents: bool = False, articles: bool = True) -> str:
    """Normalise a short answer for exact matching.

    ``accents=False`` (the default) strips accents; pass ``accents=True`` to keep them.
    ``articles=False`` keeps "a", "an", "the". Returns ``""`` when nothing is left (e.g. for
    ``"?!"``); callers treat an empty result as "no answer".
    """
    if not isinstance(text, str):
        text = str(text)
    text = text[:MAX_NORMALIZE_CHARS]
    ascii_only = text.isascii()
    if ascii_only:  # the common case, the same result faster: NFKC and accents change nothing
        text = text.lower()
    else:
        text = unicodedata.normalize("NFKC", text.translate(_ZERO_WIDTH)).casefold()
        if not accents:
            text = strip_accents(text)
    text = remove_thousands_separators(text.replace(_DOT_MARK, " "))
    text = _DECIMAL.sub(_DOT_MARK, text)
    if ascii_only:  # in ASCII the letters, marks and numbers are a-z and 0-9
        text = _ASCII_DROPPED.sub(" ", text)
    else:
        text = "".join(ch if _is_kept_char(ch) else " " for ch in text)
    text = text.replace(_DOT_MARK, ".")
    raw = text.split()
    words = [w for w in raw if not (articles and w in _ARTICLES)]
    if not words and raw == ["a"]:
        return "a"  # a lone letter A answers (a blood type, an option), it is no article
    return " ".join(words)


def contains_as_words(haystack: str, needle: str) -> bool:
    """True when the normalised ``needle`` occurs in the normalised ``haystack`` as whole words.

    Both arguments must already be normalised (see :func:`normalize_answer`):
    ``contains_as_words("paris france", "paris")`` is True, ``("parisian", "paris")`` is False.
    An empty needle is never contained.
    """
    if not needle:
        return False
    h = f" {haystack} "
    return f" {needle} " in h
