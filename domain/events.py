"""Domain events: plain frozen structs that services publish through the EventBus port.

Events are collected by the unit of work and handed to the bus only after a commit, so a
subscriber never hears of a change that was rolled back.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from domain.jobs import JobStage, JobStatus
from domain.values import Id


class DomainEvent(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of all events; ``tag=True`` puts the class name in the encoded form."""

    at: datetime
    centre_id: Id | None

    @property
    def key(self) -> str:
        """The subscription key: subscribers listen on a key (e.g. one job)."""
        return type(self).__name__


class StudyUploaded(DomainEvent, frozen=True, kw_only=True):
    study_id: Id
    instance_count: int


class StudyAssigned(DomainEvent, frozen=True, kw_only=True):
    study_id: Id
    radiologist_id: Id


class JobEvent(DomainEvent, frozen=True, kw_only=True):
    job_id: Id
    status: JobStatus
    stage: JobStage | None = None
    progress: float = 0.0
    message: str | None = None

    @property
    def key(self) -> str:
        return job_channel(self.job_id)


class JobQueued(JobEvent, frozen=True, kw_only=True):
    pass


class JobStarted(JobEvent, frozen=True, kw_only=True):
    pass


class JobProgressed(JobEvent, frozen=True, kw_only=True):
    pass


class JobCompleted(JobEvent, frozen=True, kw_only=True):
    pass


class JobFailed(JobEvent, frozen=True, kw_only=True):
    pass


class JobCancelled(JobEvent, frozen=True, kw_only=True):
    pass


class ReportVerified(DomainEvent, frozen=True, kw_only=True):
    report_id: Id
    study_id: Id


class InvoiceIssued(DomainEvent, frozen=True, kw_only=True):
    invoice_id: Id
    study_id: Id


def job_channel(job_id: Id) -> str:
    return f"job:{job_id}"


AnyEvent = (
    StudyUploaded
    | StudyAssigned
    | JobQueued
    | JobStarted
    | JobProgressed
    | JobCompleted
    | JobFailed
    | JobCancelled
    | ReportVerified
    | InvoiceIssued
)
"""Every concrete event, for decoding: ``msgspec.json.decode(data, type=AnyEvent)``."""
