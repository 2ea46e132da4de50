"""Use cases of analysis jobs: submit, read, list, cancel, external reports, dead letters.

The database is the source of truth: a job is committed first, then its id goes to the
:class:`~domain.ports.messaging.TaskQueue`, and its events reach the event bus through the
unit of work after the commit. A job id the queue could not take stays ``queued`` in the
database, and the runner's recovery sweep sends it again.

Tenancy first (another centre's job is not found), permission second. Users of a centre
start, read and cancel its jobs; API keys need ``jobs:write`` / ``jobs:read``; progress
reports from external processors need a key with ``jobs:report``; dead letters are for admins.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable

import msgspec

from domain.errors import ConcurrentModification, DomainError, InvalidInput, NotFound
from domain.events import (
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgressed,
    JobQueued,
    JobStarted,
)
from domain.identity import Principal, PrincipalKind, Role, Scope
from domain.jobs import Job, JobStage, JobStatus
from domain.ports.inference import ModelRegistry
from domain.ports.messaging import TaskQueue
from domain.ports.repositories import JobFilter
from domain.ports.services import Clock, IdGenerator
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from domain.services.access import (
    ensure_visible,
    require_role,
    require_scope,
    scoped_centre,
    visible,
)
from domain.services.auditing import Auditor
from domain.values import Id, Page

_log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 500
_UPDATE_TRIES = 5


class SubmitJob(msgspec.Struct, frozen=True, kw_only=True):
    """Analyse a study (its main image series) or one series of it with a model."""

    model_id: str
    study_id: Id | None = None
    series_id: Id | None = None


class JobReport(msgspec.Struct, frozen=True, kw_only=True):
    """What an external processor reports: any of status, stage, progress and message.

    ``status`` may be ``running`` (taking a queued job, or reporting progress),
    ``completed``, or ``failed`` (``message`` is then the error).
    """

    status: JobStatus | None = None
    stage: JobStage | None = None
    progress: float | None = None
    message: str | None = None


def job_event(kind: type[JobEvent], job: Job) -> JobEvent:
    """The event of kind ``kind`` describing ``job`` as it is now."""
    return kind(
        at=job.updated_at,
        centre_id=job.centre_id,
        job_id=job.id,
        status=job.status,
        stage=job.stage,
        progress=job.progress,
        message=job.error_message if job.status is JobStatus.FAILED else job.message,
    )


def clip_message(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text[:MAX_MESSAGE_CHARS] or None


def require_job_reader(principal: Principal) -> None:
    if principal.kind is PrincipalKind.API_KEY:
        require_scope(principal, Scope.JOBS_READ)


def require_job_writer(principal: Principal, action: str) -> None:
    """Any member of the centre starts and cancels analyses; a key needs ``jobs:write``."""
    if principal.kind is PrincipalKind.API_KEY:
        require_scope(principal, Scope.JOBS_WRITE)
    else:
        require_role(
            principal, Role.TECHNICIAN, Role.RADIOLOGIST, Role.CENTRE_MANAGER, action=action
        )


class JobService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        queue: TaskQueue,
        models: ModelRegistry,
        clock: Clock,
        ids: IdGenerator,
        auditor: Auditor,
        max_attempts: int = 3,
    ) -> None:
        if max_attempts < 1:
            raise InvalidInput(f"max_attempts must be at least 1, got {max_attempts}")
        self._uow = uow
        self._queue = queue
        self._models = models
        self._clock = clock
        self._ids = ids
        self._auditor = auditor
        self._max_attempts = max_attempts

    async def submit(self, principal: Principal, command: SubmitJob) -> Job:
        """Create a queued job, commit it, then hand its id to the queue."""
        require_job_writer(principal, "start analyses")
        if self._models.get(command.model_id) is None:
            raise InvalidInput(f"model '{command.model_id[:200]}' is not installed")
        async with self._uow() as uow:
            study_id, series_id = await self._target(uow, principal, command)
            study = await uow.studies.get(study_id)
            assert study is not None  # _target found it
            now = self._clock.now()
            job = Job(
                id=self._ids.new_id(),
                centre_id=study.centre_id,
                study_id=study.id,
                series_id=series_id,
                model_id=command.model_id,
                max_attempts=self._max_attempts,
                created_by=principal.id,
                created_at=now,
                updated_at=now,
            ).enqueue(at=now)
            await uow.jobs.add(job)
            uow.collect(job_event(JobQueued, job))
            await uow.commit()
        await self._send(job.id)
        await self._audit(principal, "job.create", job, f"model {job.model_id}")
        return job

    async def get(self, principal: Principal, job_id: Id) -> Job:
        async with self._uow() as uow:
            job = await uow.jobs.get(job_id)
        return self._visible(principal, job, job_id)

    async def cancel(self, principal: Principal, job_id: Id) -> Job:
        """Cancel a waiting or running job; a running one stops at its next stage."""
        job = await self._change(
            principal,
            job_id,
            lambda job: job.cancel(at=self._clock.now()),
            JobCancelled,
            check=lambda p: require_job_writer(p, "cancel analyses"),
        )
        await self._audit(principal, "job.cancel", job)
        return job

    async def report_event(self, principal: Principal, job_id: Id, report: JobReport) -> Job:
        """An external processor's status, progress or message, stored and broadcast."""

        def check(p: Principal) -> None:
            if p.kind is PrincipalKind.API_KEY:
                require_scope(p, Scope.JOBS_REPORT)
            else:
                require_role(p, action="report job progress")

        if report.status not in (None, JobStatus.RUNNING, JobStatus.COMPLETED, JobStatus.FAILED):
            raise InvalidInput("status must be running, completed or failed")
        if report.progress is not None and not 0.0 <= report.progress <= 1.0:
            raise InvalidInput(f"progress must be within 0..1, got {report.progress}")
        job = await self._change(
            principal, job_id, lambda job: self._apply(job, report), None, check=check
        )
        await self._audit(principal, "job.report", job, f"status {job.status.value}")
        return job

    async def retry(self, principal: Principal, job_id: Id) -> Job:
        """Put a dead letter back on the queue with a fresh set of attempts (admins)."""

        def again(job: Job) -> Job:
            if not job.dead_letter:
                raise InvalidInput(
                    f"job {job.id} is {job.status.value} after {job.attempts} of "
                    f"{job.max_attempts} attempts; only a failed job that used every attempt "
                    "is retried"
                )
            return job.retry(at=self._clock.now())

        job = await self._change(
            principal,
            job_id,
            again,
            JobQueued,
            check=lambda p: require_role(p, action="retry dead letters"),
        )
        await self._send(job.id)
        await self._audit(principal, "job.retry", job)
        return job

    async def dead_letters(self, principal: Principal, page: Page) -> builtins.list[Job]:
        """Failed jobs that used every attempt, newest first (admins)."""
        require_role(principal, action="list dead letters")
        async with self._uow() as uow:
            return await uow.jobs.list(JobFilter(dead_letter=True), page)

    # -- helpers -------------------------------------------------------------------------

    async def _target(
        self, uow: UnitOfWork, principal: Principal, command: SubmitJob
    ) -> tuple[Id, Id | None]:
        if command.series_id is not None:
            series = await uow.series.get(command.series_id)
            study = None if series is None else await uow.studies.get(series.study_id)
            if series is None or study is None:
                raise NotFound("series", command.series_id)
            ensure_visible(principal, study.centre_id, "series", command.series_id)
            if command.study_id is not None and command.study_id != study.id:
                raise InvalidInput(f"series {series.id} is not part of study {command.study_id}")
            return study.id, series.id
        if command.study_id is None:
            raise InvalidInput("name the study_id or the series_id to analyse")
        study = visible(
            principal, await uow.studies.get(command.study_id), "study", command.study_id
        )
        return study.id, None

    def _visible(self, principal: Principal, job: Job | None, job_id: Id) -> Job:
        job = visible(principal, job, "job", job_id)
        require_job_reader(principal)
        return job

    async def _change(
        self,
        principal: Principal,
        job_id: Id,
        change: Callable[[Job], Job],
        event: type[JobEvent] | None,
        *,
        check: Callable[[Principal], None],
    ) -> Job:
        """Read, check, change and store one job, again when a worker wrote it meanwhile."""
        for attempt in range(_UPDATE_TRIES):
            async with self._uow() as uow:
                job = visible(principal, await uow.jobs.get(job_id), "job", job_id)
                check(principal)
                changed = change(job)
                try:
                    stored = await uow.jobs.update(changed)
                except ConcurrentModification:
                    if attempt == _UPDATE_TRIES - 1:
                        raise
                    continue
                uow.collect(job_event(event or _event_for(stored), stored))
                await uow.commit()
                return stored
        raise AssertionError("unreachable")

    def _apply(self, job: Job, report: JobReport) -> Job:
        now = self._clock.now()
        message = clip_message(report.message)
        if report.status is JobStatus.FAILED:
            return job.fail(message or "the external processor reported a failure", at=now)
        if report.status is JobStatus.RUNNING and job.status is JobStatus.QUEUED:
            # an external processor takes the job: no worker lease, it reports instead
            job = job.start(at=now, lease_until=now)
            job = msgspec.structs.replace(job, lease_expires_at=None)
        if report.stage is not None or report.progress is not None or message is not None:
            job = job.report_progress(
                stage=report.stage or job.stage or JobStage.LOADING,
                progress=job.progress if report.progress is None else report.progress,
                message=message,
                at=now,
            )
        if report.status is JobStatus.COMPLETED:
            job = job.complete(at=now)
        return job

    async def _send(self, job_id: Id) -> None:
        try:
            await self._queue.enqueue(job_id)
        except DomainError as err:
            # committed and queued in the database: the recovery sweep sends it later
            _log.warning("job %s not handed to the queue yet: %s", job_id, err.detail)

    async def _audit(
        self, principal: Principal, action: str, job: Job, detail: str | None = None
    ) -> None:
        await self._auditor.record(
            principal, action, "job", job.id, centre_id=job.centre_id, detail=detail
        )

    # after the methods that annotate with the builtin ``list``, which this name shadows
    async def list(self, principal: Principal, where: JobFilter, page: Page) -> builtins.list[Job]:
        """Jobs of the principal's centre (an admin's choice of centre, or all), newest first."""
        require_job_reader(principal)
        scoped = msgspec.structs.replace(where, centre_id=scoped_centre(principal, where.centre_id))
        async with self._uow() as uow:
            return await uow.jobs.list(scoped, page)


def _event_for(job: Job) -> type[JobEvent]:
    return {
        JobStatus.QUEUED: JobQueued,
        JobStatus.RUNNING: JobProgressed,
        JobStatus.COMPLETED: JobCompleted,
        JobStatus.FAILED: JobFailed,
        JobStatus.CANCELLED: JobCancelled,
    }.get(job.status, JobStarted)
