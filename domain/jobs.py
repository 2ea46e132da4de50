"""Analysis jobs: a model run over a study or a series, with stage and progress."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from domain.errors import InvalidInput
from domain.state_machine import TransitionTable
from domain.values import Id


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobStage(enum.StrEnum):
    LOADING = "loading"
    PREPROCESSING = "preprocessing"
    INFERENCE = "inference"
    POSTPROCESSING = "postprocessing"


JOB_TRANSITIONS: TransitionTable[JobStatus] = TransitionTable(
    "job",
    {
        JobStatus.PENDING: {JobStatus.QUEUED, JobStatus.CANCELLED, JobStatus.FAILED},
        JobStatus.QUEUED: {JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED},
        # a running job whose worker died goes back to the queue (its lease expired)
        JobStatus.RUNNING: {
            JobStatus.QUEUED,
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        },
        JobStatus.COMPLETED: set(),
        JobStatus.FAILED: {JobStatus.QUEUED},  # an admin retries a dead letter
        JobStatus.CANCELLED: set(),
    },
)


class Job(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    centre_id: Id
    study_id: Id
    series_id: Id | None = None
    model_id: str
    status: JobStatus = JobStatus.PENDING
    stage: JobStage | None = None
    progress: float = 0.0
    message: str | None = None
    attempts: int = 0
    max_attempts: int = 3
    error_message: str | None = None
    created_by: Id | None = None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_expires_at: datetime | None = None
    version: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.progress <= 1.0:
            raise ValueError(f"progress must be within 0..1, got {self.progress}")

    @property
    def finished(self) -> bool:
        return JOB_TRANSITIONS.is_terminal(self.status)

    def _move(self, status: JobStatus, at: datetime, **changes: object) -> Job:
        JOB_TRANSITIONS.check(self.status, status)
        return msgspec.structs.replace(self, status=status, updated_at=at, **changes)

    def enqueue(self, *, at: datetime) -> Job:
        return self._move(JobStatus.QUEUED, at, queued_at=at, lease_expires_at=None)

    def start(self, *, at: datetime, lease_until: datetime) -> Job:
        """Claim the job for one attempt. Progress is kept: a later attempt (after a dead
        worker or a transient fault) shows no progress until it passes where the last one
        stopped, so watchers never see it go backwards."""
        return self._move(
            JobStatus.RUNNING,
            at,
            started_at=at,
            attempts=self.attempts + 1,
            lease_expires_at=lease_until,
            stage=JobStage.LOADING,
            error_message=None,
        )

    def report_progress(
        self, *, stage: JobStage, progress: float, at: datetime, message: str | None = None
    ) -> Job:
        """Record progress of a running job. Progress never goes backwards within a run."""
        if self.status is not JobStatus.RUNNING:
            raise InvalidInput(f"job is {self.status.value}; only a running job reports progress")
        if not 0.0 <= progress <= 1.0:
            raise InvalidInput(f"progress must be within 0..1, got {progress}")
        return msgspec.structs.replace(
            self, stage=stage, progress=max(self.progress, progress), message=message, updated_at=at
        )

    def complete(self, *, at: datetime) -> Job:
        return self._move(
            JobStatus.COMPLETED, at, finished_at=at, progress=1.0, lease_expires_at=None
        )

    def fail(self, error_message: str, *, at: datetime) -> Job:
        return self._move(
            JobStatus.FAILED, at, finished_at=at, error_message=error_message, lease_expires_at=None
        )

    def cancel(self, *, at: datetime) -> Job:
        return self._move(JobStatus.CANCELLED, at, finished_at=at, lease_expires_at=None)

    def extend_lease(self, *, until: datetime, at: datetime) -> Job:
        """Heartbeat of a running job: its worker is alive until ``until``."""
        if self.status is not JobStatus.RUNNING:
            raise InvalidInput(f"job is {self.status.value}; only a running job holds a lease")
        return msgspec.structs.replace(self, lease_expires_at=until, updated_at=at)

    @property
    def dead_letter(self) -> bool:
        """A failed job that used every attempt: an admin may retry it."""
        return self.status is JobStatus.FAILED and self.attempts >= self.max_attempts

    def retry(self, *, at: datetime) -> Job:
        """Put a failed job back on the queue with a fresh set of attempts (admin)."""
        return self._move(
            JobStatus.QUEUED,
            at,
            queued_at=at,
            attempts=0,
            finished_at=None,
            stage=None,
            progress=0.0,
            lease_expires_at=None,
        )

    def release(self, *, at: datetime, error_message: str | None = None) -> Job:
        """Hand a running job back to the queue (lost lease or transient fault)."""
        return self._move(
            JobStatus.QUEUED, at, queued_at=at, lease_expires_at=None, error_message=error_message
        )
