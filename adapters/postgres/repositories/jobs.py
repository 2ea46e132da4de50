"""Analysis jobs and their results in PostgreSQL. Detections are stored as jsonb."""

from __future__ import annotations

from datetime import datetime

import msgspec

from adapters.postgres.repositories._sql import Where, insert, to_struct, update_versioned
from adapters.postgres.session import Session
from domain.analysis import AnalysisResult
from domain.jobs import Job, JobStatus
from domain.ports.repositories import JobFilter
from domain.values import Id, Page

_JOB_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(Job))


class PostgresJobRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, job: Job) -> None:
        await insert(self._connection, "jobs", "job", msgspec.structs.asdict(job))

    async def get(self, job_id: Id) -> Job | None:
        row = await self._connection.fetchrow(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = $1", job_id
        )
        return None if row is None else to_struct(row, Job)

    async def update(self, job: Job) -> Job:
        await update_versioned(
            self._connection, "jobs", "job", job.id, job.version, msgspec.structs.asdict(job)
        )
        return msgspec.structs.replace(job, version=job.version + 1)

    async def list_recoverable(self, now: datetime, limit: int) -> list[Job]:
        """Pending and queued jobs, and running ones whose lease expired before ``now``.
        Oldest first."""
        rows = await self._connection.fetch(
            f"SELECT {_JOB_COLUMNS} FROM jobs "
            "WHERE status IN ($1, $2) OR (status = $3 AND lease_expires_at < $4) "
            "ORDER BY created_at, id LIMIT $5",
            JobStatus.PENDING,
            JobStatus.QUEUED,
            JobStatus.RUNNING,
            now,
            limit,
        )
        return [to_struct(row, Job) for row in rows]

    async def list(self, where: JobFilter, page: Page) -> list[Job]:
        """Newest first."""
        w = Where()
        w.equal("centre_id", where.centre_id)
        w.equal("status", where.status)
        w.equal("study_id", where.study_id)
        w.equal("created_by", where.created_by)
        w.equal("model_id", where.model_id)
        if where.dead_letter is not None:
            dead = "status = 'failed' AND attempts >= max_attempts"
            w.add(dead if where.dead_letter else f"NOT ({dead})")
        rows = await self._connection.fetch(
            f"SELECT {_JOB_COLUMNS} FROM jobs {w.sql()} "
            f"ORDER BY created_at DESC, id DESC {w.page(page)}",
            *w.args,
        )
        return [to_struct(row, Job) for row in rows]


_RESULT_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(AnalysisResult))


class PostgresAnalysisResultRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, result: AnalysisResult) -> None:
        await insert(
            self._connection, "analysis_results", "analysis result", msgspec.structs.asdict(result)
        )

    async def _one(self, tail: str, *args: object) -> AnalysisResult | None:
        row = await self._connection.fetchrow(
            f"SELECT {_RESULT_COLUMNS} FROM analysis_results {tail}", *args
        )
        return None if row is None else to_struct(row, AnalysisResult)

    async def get(self, result_id: Id) -> AnalysisResult | None:
        return await self._one("WHERE id = $1", result_id)

    async def get_for_job(self, job_id: Id) -> AnalysisResult | None:
        return await self._one("WHERE job_id = $1", job_id)

    async def latest_for_study(self, study_id: Id) -> AnalysisResult | None:
        return await self._one(
            "WHERE study_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1", study_id
        )
