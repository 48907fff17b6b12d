"""Test helper shared by the report and security tests: the start tags of an HTML page."""

from __future__ import annotations

from html.parser import HTMLParser


def start_tags(html: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every start tag of ``html`` as (tag, [(attribute, value), ...]), in document order."""
    found: list[tuple[str, list[tuple[str, str]]]] = []

    class P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, [(k, v or "") for k, v in attrs]))

    P().feed(html)
    return found
