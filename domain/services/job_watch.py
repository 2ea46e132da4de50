"""Watching a job live: the use case that admits a watcher, and the stream of updates it sees.

A watcher first gets the job's current state, then every change. Changes come as job events
from the event bus; :class:`JobStream` turns them into :class:`JobUpdate` values so that what a
client sees is coherent even when events are late or repeated:

- an event no newer than the state already sent is dropped (it is already part of it);
- progress never goes backwards, including when a job whose worker died is run again: a
  progress bar that jumps back would tell the user the work was lost, and it was not;
- after a final state (completed, failed, cancelled) only a move the job state machine allows
  (an admin retrying a failed job) is passed on, and it starts the progress afresh.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import msgspec

from domain.events import JobEvent
from domain.identity import Principal
from domain.jobs import JOB_TRANSITIONS, Job, JobStage, JobStatus
from domain.services.auditing import Auditor
from domain.values import Id

FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
"""Where a run ends. A failed job may still be retried by an admin (a new run), so this is
not the state machine's notion of terminal."""


class JobUpdate(msgspec.Struct, frozen=True, kw_only=True):
    """What a watcher is told about a job: its state at ``timestamp``."""

    job_id: Id
    status: JobStatus
    stage: JobStage | None
    progress: float
    message: str | None
    timestamp: datetime

    @property
    def final(self) -> bool:
        """The job has reached completed, failed or cancelled."""
        return self.status in FINAL_STATUSES


class JobStream:
    """The updates one watcher of one job sees, starting from the job as it was read."""

    def __init__(self, job: Job) -> None:
        self._read_at = job.updated_at
        self._last = JobUpdate(
            job_id=job.id,
            status=job.status,
            stage=job.stage,
            progress=job.progress,
            message=job.error_message if job.status is JobStatus.FAILED else job.message,
            timestamp=job.updated_at,
        )

    @property
    def current(self) -> JobUpdate:
        """The last state sent (at first, the job as it was read)."""
        return self._last

    def accept(self, event: JobEvent) -> JobUpdate | None:
        """The update to send for ``event``, or ``None`` when it adds nothing."""
        if event.job_id != self._last.job_id or event.at <= self._read_at:
            return None
        last = self._last
        restarted = last.final
        if restarted and not JOB_TRANSITIONS.can(last.status, event.status):
            return None
        update = JobUpdate(
            job_id=event.job_id,
            status=event.status,
            stage=event.stage,
            progress=event.progress if restarted else max(last.progress, event.progress),
            message=event.message,
            timestamp=event.at,
        )
        if update == last:
            return None
        self._last = update
        return update


class JobReader(Protocol):
    """Reads one job for a principal, with the visibility rules of reading it over HTTP
    (:meth:`domain.services.jobs.JobService.get`)."""

    async def get(self, principal: Principal, job_id: Id) -> Job: ...


class JobWatchService:
    """Admits watchers: whoever may read a job may watch it (tenancy first, then a key's
    ``jobs:read`` scope, as :class:`~domain.services.jobs.JobService` decides), and every
    watch goes to the audit trail."""

    def __init__(self, *, jobs: JobReader, auditor: Auditor) -> None:
        self._jobs = jobs
        self._auditor = auditor

    async def watch(self, principal: Principal, job_id: Id) -> JobStream:
        """The stream of a job the principal may see; ``NotFound`` for an unknown job and for
        one of another centre alike. Subscribe to the job's events *before* calling this, so
        no change falls between the state read here and the first event."""
        job = await self._jobs.get(principal, job_id)
        await self._auditor.record(principal, "job.watch", "job", job.id, centre_id=job.centre_id)
        return JobStream(job)
