"""The matching rules of :mod:`domain.ports.dicomweb`, for adapters that match in Python.

The PostgreSQL adapter implements the same rules in SQL (``LIKE``/``ILIKE`` for wildcards, a
case-insensitive regular expression for fuzzy names); the contract suite holds both to them.
"""

from __future__ import annotations

import re
from datetime import date

from domain.ports.dicomweb import DateRange, MatchMode, TextMatch

NAME_WORD_SEPARATORS = r"[\s^,=\-]"
"""What separates the words of a person name: spaces, the PN component separators ``^`` and
``=``, commas and hyphens."""


def query_words(text: str) -> list[str]:
    """The words of a fuzzy key (wildcards dropped: fuzzy matching is prefix matching)."""
    return [w for w in re.split(NAME_WORD_SEPARATORS + "+", text.replace("*", " ")) if w]


def fuzzy_word_pattern(word: str) -> str:
    """A regular expression (Python and PostgreSQL ARE alike) for ``word`` starting a word."""
    return f"(^|{NAME_WORD_SEPARATORS}){re.escape(word)}"


def wildcard_pattern(text: str) -> str:
    """The regular expression of a DICOM wildcard key (``*`` any run, ``?`` one character)."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


def like_pattern(text: str) -> str:
    """The SQL ``LIKE`` pattern (escape character ``\\``) of a DICOM wildcard key."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def text_matches(value: str | None, match: TextMatch) -> bool:
    if value is None:
        return False
    if match.mode is MatchMode.FUZZY:
        words = query_words(match.value)
        return all(re.search(fuzzy_word_pattern(w), value, re.IGNORECASE) for w in words)
    flags = re.IGNORECASE if match.ignore_case else 0
    if match.mode is MatchMode.WILDCARD:
        return re.fullmatch(wildcard_pattern(match.value), value, flags | re.DOTALL) is not None
    if match.ignore_case:
        return value.lower() == match.value.lower()
    return value == match.value


def date_in(value: date | None, span: DateRange) -> bool:
    if value is None:
        return False
    return (span.start is None or value >= span.start) and (span.end is None or value <= span.end)


def header_text(header: dict[str, object], tag: str) -> str | None:
    """The first value of element ``tag`` in a DICOM JSON header, as text (``None`` if absent)."""
    element = header.get(tag)
    values = element.get("Value") if isinstance(element, dict) else None
    if not isinstance(values, list) or not values:
        return None
    first = values[0]
    if isinstance(first, dict):  # a person name
        alphabetic = first.get("Alphabetic")
        return alphabetic if isinstance(alphabetic, str) else None
    return None if first is None else str(first)
