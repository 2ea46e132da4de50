"""The tables of the in-memory database, and the generic moves every repository shares.

Aggregates are frozen structs, so a snapshot of the tables is a shallow copy of each dict:
that is how a unit of work rolls back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

import msgspec

from domain.errors import ConcurrentModification
from domain.values import Id, Page


class Versioned(Protocol):
    @property
    def id(self) -> Id: ...

    @property
    def version(self) -> int: ...


V = TypeVar("V", bound=Versioned)
T = TypeVar("T")


class Tables:
    """Every table as a dict keyed by id (plus the few side tables that need other keys)."""

    NAMES = (
        "centres",
        "users",
        "api_keys",
        "studies",
        "series",
        "instances",
        "jobs",
        "results",
        "reports",
        "report_versions",
        "measurements",
        "annotations",
        "prices",
        "invoices",
        "invoice_sequences",
        "audit",
    )

    def __init__(self) -> None:
        self.data: dict[str, dict[Any, Any]] = {name: {} for name in self.NAMES}

    def snapshot(self) -> dict[str, dict[Any, Any]]:
        return {name: dict(rows) for name, rows in self.data.items()}

    def restore(self, snapshot: dict[str, dict[Any, Any]]) -> None:
        self.data = snapshot


def update_versioned(rows: dict[Id, V], entity: V, resource: str) -> V:
    """Store ``entity`` when its version is the stored one; return it with ``version + 1``."""
    current = rows.get(entity.id)
    if current is None or current.version != entity.version:
        raise ConcurrentModification(resource, entity.id, entity.version)
    stored: V = msgspec.structs.replace(entity, version=entity.version + 1)  # type: ignore[type-var]
    rows[entity.id] = stored
    return stored


def paginate(items: Iterable[T], page: Page) -> list[T]:
    return list(items)[page.skip : page.skip + page.limit]


def matches(value: object, wanted: object) -> bool:
    """A filter field matches when it is unset (``None``) or equal."""
    return wanted is None or value == wanted


def select(
    rows: Iterable[T], predicate: Callable[[T], bool], key: Callable[[T], Any], page: Page
) -> list[T]:
    return paginate(sorted(filter(predicate, rows), key=key), page)
