"""``/jobs``: start an analysis, follow it, cancel it; reports from processors; dead letters."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from domain.identity import Principal
from domain.jobs import JobStatus
from domain.ports.repositories import JobFilter
from domain.services.jobs import JobReport, SubmitJob
from domain.values import MAX_PAGE_SIZE, Page
from entrypoints.bootstrap import Container
from entrypoints.http.dependencies import provide_container
from entrypoints.http.identity.schemas import read_as
from entrypoints.http.jobs.schemas import JobCreate, JobEventCreate, JobRead
from entrypoints.http.security import provide_principal

Skip = Annotated[int, QueryParameter(ge=0, description="Items to pass over")]
Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="At most this many items")
]
DEPENDENCIES = {
    "container": Provide(provide_container, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
}


class JobController(Controller):
    path = "/jobs"
    tags = ["jobs"]
    dependencies = DEPENDENCIES

    @post(
        "/", operation_id="createJob", summary="Start analysing a study or series", status_code=201
    )
    async def create(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[JobCreate],
    ) -> JobRead:
        command = SubmitJob(
            model_id=data.model_id, study_id=data.study_id, series_id=data.series_id
        )
        return read_as(await container.services.jobs.submit(principal, command), JobRead)

    @get("/", operation_id="listJobs", summary="Jobs the caller may see, newest first")
    async def list_jobs(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        status: FromQuery[JobStatus | None] = None,
        user_id: FromQuery[UUID | None] = None,
        study_id: FromQuery[UUID | None] = None,
        model_id: FromQuery[str | None] = None,
        centre_id: FromQuery[UUID | None] = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> list[JobRead]:
        where = JobFilter(
            centre_id=centre_id,
            status=status,
            study_id=study_id,
            created_by=user_id,
            model_id=model_id,
        )
        found = await container.services.jobs.list(principal, where, Page(skip=skip, limit=limit))
        return [read_as(job, JobRead) for job in found]

    @get(
        "/dead-letters",
        operation_id="listDeadLetterJobs",
        summary="Failed jobs that used every attempt (admin)",
    )
    async def dead_letters(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> list[JobRead]:
        found = await container.services.jobs.dead_letters(principal, Page(skip=skip, limit=limit))
        return [read_as(job, JobRead) for job in found]

    @get("/{job_id:uuid}", operation_id="getJob", summary="One job: status, stage, progress")
    async def get_job(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        job_id: FromPath[UUID],
    ) -> JobRead:
        return read_as(await container.services.jobs.get(principal, job_id), JobRead)

    @post(
        "/{job_id:uuid}/cancel",
        operation_id="cancelJob",
        summary="Cancel a waiting or running job (a running one stops at its next stage)",
        status_code=200,
    )
    async def cancel(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        job_id: FromPath[UUID],
    ) -> JobRead:
        return read_as(await container.services.jobs.cancel(principal, job_id), JobRead)

    @post(
        "/{job_id:uuid}/events",
        operation_id="reportJobEvent",
        summary="A processor reports status, progress or a message (API key with jobs:report)",
        status_code=200,
    )
    async def report(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        job_id: FromPath[UUID],
        data: JSONBody[JobEventCreate],
    ) -> JobRead:
        report = JobReport(
            status=None if data.status is None else JobStatus(data.status),
            stage=data.stage,
            progress=data.progress,
            message=data.message,
        )
        job = await container.services.jobs.report_event(principal, job_id, report)
        return read_as(job, JobRead)

    @post(
        "/{job_id:uuid}/retry",
        operation_id="retryJob",
        summary="Queue a dead letter again with a fresh set of attempts (admin)",
        status_code=200,
    )
    async def retry(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        job_id: FromPath[UUID],
    ) -> JobRead:
        return read_as(await container.services.jobs.retry(principal, job_id), JobRead)
