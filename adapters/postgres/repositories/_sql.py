"""Helpers shared by the PostgreSQL repositories: row mapping, WHERE building, error mapping."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import asyncpg
import msgspec

from adapters.postgres.session import Session
from domain.errors import ConcurrentModification, Conflict, InvalidInput, NotFound
from domain.values import Id, Page

T = TypeVar("T")

# Messages for the constraints a user can run into, by constraint (or unique index) name.
_CONSTRAINT_MESSAGES: dict[str, str] = {
    "users_username_key": "a user with this username already exists",
    "users_email_key": "a user with this email already exists",
    "api_keys_prefix_key": "an API key with this prefix already exists",
    "studies_code_key": "a study with this code already exists",
    "studies_centre_uid_key": "a study with this StudyInstanceUID already exists in the centre",
    "series_study_uid_key": "a series with this SeriesInstanceUID already exists in the study",
    "instances_centre_uid_key": "an instance with this SOPInstanceUID already exists in the centre",
    "analysis_results_job_key": "the job already has a result",
    "reports_one_draft_per_result_idx": "a report was already drafted from this analysis result",
    "price_list_one_active_price_idx": "the centre already has an active price for this modality",
    "invoices_one_active_per_study_idx": "the study already has an invoice that is not cancelled",
    "invoices_centre_year_sequence_key": "an invoice with this sequence already exists",
    "invoices_centre_number_key": "an invoice with this number already exists in the centre",
}


@contextmanager
def translating(resource: str) -> Iterator[None]:
    """Turn integrity errors raised inside the block into domain errors."""
    try:
        yield
    except asyncpg.UniqueViolationError as err:
        name = err.constraint_name or ""
        message = _CONSTRAINT_MESSAGES.get(name) or f"this {resource} already exists"
        raise Conflict(message) from err
    except asyncpg.ForeignKeyViolationError as err:
        raise Conflict(
            f"the {resource} refers to something that does not exist "
            f"({err.constraint_name or 'foreign key'})"
        ) from err
    except (asyncpg.CheckViolationError, asyncpg.NotNullViolationError) as err:
        raise InvalidInput(f"the {resource} is not valid: {err.constraint_name or err}") from err


def to_struct(record: Mapping[str, Any], type_: type[T]) -> T:
    return msgspec.convert(dict(record), type_)


class Where:
    """Collects ``AND``-ed conditions and their positional arguments."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.args: list[Any] = []

    def arg(self, value: Any) -> str:
        """Register a parameter; returns its placeholder (``$n``)."""
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, condition: str, *values: Any) -> None:
        """Add ``condition`` where ``{}`` marks each value, in order."""
        self.conditions.append(condition.format(*(self.arg(v) for v in values)))

    def equal(self, column: str, value: Any) -> None:
        if value is not None:
            self.add(f"{column} = {{}}", value)

    def contains(self, column: str, text: str | None) -> None:
        """Case-insensitive substring match (``%`` and ``_`` in ``text`` match themselves)."""
        if text is not None:
            self.add(f"{column} ILIKE {{}} ESCAPE '\\'", f"%{escape_like(text)}%")

    def sql(self) -> str:
        return f"WHERE {' AND '.join(self.conditions)}" if self.conditions else ""

    def page(self, page: Page) -> str:
        return f"LIMIT {self.arg(page.limit)} OFFSET {self.arg(page.skip)}"


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def insert_sql(table: str, columns: list[str]) -> str:
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"


async def insert(connection: Session, table: str, resource: str, values: Mapping[str, Any]) -> None:
    columns = list(values)
    with translating(resource):
        await connection.execute(insert_sql(table, columns), *values.values())


async def insert_all(
    connection: Session,
    table: str,
    resource: str,
    rows: Sequence[Mapping[str, Any]],
) -> None:
    """Insert rows with the same columns in one pipelined round trip (``executemany``)."""
    if not rows:
        return
    columns = list(rows[0])
    with translating(resource):
        await connection.executemany(
            insert_sql(table, columns), [[row[c] for c in columns] for row in rows]
        )


async def update_versioned(
    connection: Session,
    table: str,
    resource: str,
    entity_id: Id,
    expected_version: int,
    values: Mapping[str, Any],
) -> None:
    """``UPDATE`` the row if its version is still ``expected_version``, bumping the version.

    Raises ``NotFound`` when the row is gone and ``ConcurrentModification`` when another
    writer changed it since it was read.
    """
    columns = [c for c in values if c not in ("id", "version")]
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=3))
    sql = (
        f"UPDATE {table} SET {assignments}, version = version + 1 "
        "WHERE id = $1 AND version = $2 RETURNING version"
    )
    with translating(resource):
        stored = await connection.fetchval(
            sql, entity_id, expected_version, *(values[c] for c in columns)
        )
    if stored is None:
        exists = await connection.fetchval(f"SELECT 1 FROM {table} WHERE id = $1", entity_id)
        if exists is None:
            raise NotFound(resource, entity_id)
        raise ConcurrentModification(resource, entity_id, expected_version)


async def update_plain(
    connection: Session,
    table: str,
    resource: str,
    entity_id: Id,
    values: Mapping[str, Any],
) -> None:
    """``UPDATE`` a row without a version; ``NotFound`` when it does not exist."""
    columns = [c for c in values if c != "id"]
    assignments = ", ".join(f"{c} = ${i}" for i, c in enumerate(columns, start=2))
    with translating(resource):
        result = await connection.execute(
            f"UPDATE {table} SET {assignments} WHERE id = $1",
            entity_id,
            *(values[c] for c in columns),
        )
    if result.endswith(" 0"):
        raise NotFound(resource, entity_id)
