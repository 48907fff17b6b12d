"""Normalised exact match: the SQuAD / TriviaQA convention."""

from __future__ import annotations

import pytest

from semcal.collapse.normalize import (
    MAX_NORMALIZE_CHARS,
    contains_as_words,
    normalize_answer,
    remove_thousands_separators,
    strip_accents,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paris", "paris"),
        ("  The Eiffel   Tower! ", "eiffel tower"),
        ("Paris, France.", "paris france"),
        ("An apple a day", "apple day"),
        ("theatre", "theatre"),  # "the" only as a whole word
        ("Café Müller", "cafe muller"),
        ("ＰＡＲＩＳ", "paris"),  # full-width letters (NFKC)
        ("Straße", "strasse"),  # casefold
        ("1,000", "1000"),
        ("1,234,567 people", "1234567 people"),
        ("3, 4", "3 4"),  # a list, not a thousands separator
        ("1,2", "1 2"),
        ("3.5 km", "3.5 km"),
        ("end.", "end"),
        ("U.S.A.", "u s"),  # the convention drops the lone "a" as an article
        ("rock'n'roll", "rock n roll"),
        ("$1,200.00", "1200.00"),
        ("?!", ""),
        ("", ""),
        ("the", ""),
        ("A", "a"),  # a lone letter A is an answer (a blood type), not an article
        ("A.", "a"),
        ("an", ""),
        ("São Paulo\u00a0(city)", "sao paulo city"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_options() -> None:
    assert normalize_answer("Café", accents=True) == "café"
    assert normalize_answer("The Beatles", articles=False) == "the beatles"
    assert strip_accents("Ångström") == "Angstrom"
    assert remove_thousands_separators("10,000,000 and 12,34") == "10000000 and 12,34"


def test_contains_as_words() -> None:
    assert contains_as_words("paris france", "paris")
    assert contains_as_words("city of new york", "new york")
    assert not contains_as_words("parisian", "paris")
    assert not contains_as_words("paris", "")


def test_long_input_is_cut() -> None:
    out = normalize_answer("a b " * MAX_NORMALIZE_CHARS)
    assert len(out) <= MAX_NORMALIZE_CHARS
