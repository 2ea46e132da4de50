"""The audit trail in PostgreSQL; each record is its own short transaction."""

from __future__ import annotations

import msgspec

from adapters.postgres.database import PostgresDatabase
from adapters.postgres.repositories._sql import Where, insert_sql, to_struct
from domain.audit import AuditEvent, AuditQuery
from domain.values import Page

_AUDIT_FIELDS = [f.name for f in msgspec.structs.fields(AuditEvent)]
_AUDIT_COLUMNS = ", ".join(_AUDIT_FIELDS)
_INSERT = insert_sql("audit_events", _AUDIT_FIELDS)


class PostgresAuditLog:
    """Records survive the rollback of the use case that wrote them: an access that failed
    is still an access."""

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    async def record(self, event: AuditEvent) -> None:
        values = msgspec.structs.asdict(event)
        async with self._database.pool.acquire() as connection:
            await connection.execute(_INSERT, *(values[name] for name in _AUDIT_FIELDS))

    async def query(self, where: AuditQuery, page: Page) -> list[AuditEvent]:
        """Newest first."""
        w = Where()
        w.equal("actor_id", where.actor_id)
        w.equal("resource_type", where.resource_type)
        w.equal("resource_id", where.resource_id)
        w.equal("centre_id", where.centre_id)
        if where.since is not None:
            w.add("at >= {}", where.since)
        async with self._database.pool.acquire() as connection:
            rows = await connection.fetch(
                f"SELECT {_AUDIT_COLUMNS} FROM audit_events {w.sql()} "
                f"ORDER BY at DESC, id DESC {w.page(page)}",
                *w.args,
            )
        return [to_struct(row, AuditEvent) for row in rows]
