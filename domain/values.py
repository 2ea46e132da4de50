"""Small value types shared by every aggregate: identifiers, timestamps, pages."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import msgspec

Id = UUID
"""Every aggregate is identified by a UUID generated through the ``IdGenerator`` port."""


def utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware UTC datetime; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError(f"datetime {moment!r} has no timezone; the domain works in UTC")
    return moment.astimezone(UTC)


def is_plain_number(text: str) -> bool:
    """Only the ASCII digits 0-9, for numbers in user input. ``str.isdigit()`` alone also
    accepts '²' (which ``int()`` then refuses: a 500) and Arabic-Indic digits (which ``int()``
    reads as numbers)."""
    return text.isascii() and text.isdigit()


DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class Page(msgspec.Struct, frozen=True, kw_only=True):
    """A window of a list: ``skip`` items are passed over, at most ``limit`` returned."""

    skip: int = 0
    limit: int = DEFAULT_PAGE_SIZE

    def __post_init__(self) -> None:
        if self.skip < 0:
            raise ValueError(f"skip must be >= 0, got {self.skip}")
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE_SIZE}, got {self.limit}")
