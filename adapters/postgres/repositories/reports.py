"""Reports in PostgreSQL, with every stored version kept in ``report_versions``."""

from __future__ import annotations

import msgspec

from adapters.postgres.repositories._sql import Where, insert, to_struct, update_versioned
from adapters.postgres.session import Session
from domain.ports.repositories import ReportFilter
from domain.reports import Report
from domain.values import Id, Page

_REPORT_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(Report))


class PostgresReportRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def _snapshot(self, report: Report) -> None:
        await self._connection.execute(
            "INSERT INTO report_versions (report_id, version, snapshot) VALUES ($1, $2, $3)",
            report.id,
            report.version,
            report,
        )

    async def add(self, report: Report) -> None:
        await insert(self._connection, "reports", "report", msgspec.structs.asdict(report))
        await self._snapshot(report)

    async def get(self, report_id: Id) -> Report | None:
        row = await self._connection.fetchrow(
            f"SELECT {_REPORT_COLUMNS} FROM reports WHERE id = $1", report_id
        )
        return None if row is None else to_struct(row, Report)

    async def update(self, report: Report) -> Report:
        """Store a new version; earlier versions stay readable through ``versions``."""
        await update_versioned(
            self._connection,
            "reports",
            "report",
            report.id,
            report.version,
            msgspec.structs.asdict(report),
        )
        stored = msgspec.structs.replace(report, version=report.version + 1)
        await self._snapshot(stored)
        return stored

    async def versions(self, report_id: Id) -> list[Report]:
        """Every stored version of the report, oldest first."""
        rows = await self._connection.fetch(
            "SELECT snapshot FROM report_versions WHERE report_id = $1 ORDER BY version",
            report_id,
        )
        return [msgspec.convert(row["snapshot"], Report) for row in rows]

    async def list(self, where: ReportFilter, page: Page) -> list[Report]:
        """Newest first."""
        w = Where()
        w.equal("centre_id", where.centre_id)
        w.equal("study_id", where.study_id)
        w.equal("author_id", where.author_id)
        w.equal("status", where.status)
        w.equal("is_ai_generated", where.is_ai_generated)
        w.equal("analysis_result_id", where.analysis_result_id)
        rows = await self._connection.fetch(
            f"SELECT {_REPORT_COLUMNS} FROM reports {w.sql()} "
            f"ORDER BY created_at DESC, id DESC {w.page(page)}",
            *w.args,
        )
        return [to_struct(row, Report) for row in rows]
