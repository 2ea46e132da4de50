"""The seam between the job runner (durability, leases, events) and the work a job does.

The runner claims a job, then calls a :class:`JobHandler` with a :class:`ProgressReporter`.
The handler does the work (for analyses: load the series, run the pipeline, store the result,
draft the AI report) and returns normally on success. What it raises decides the job's fate:

* :class:`~domain.errors.InvalidInput` or :class:`~domain.errors.NotFound` (an unreadable
  series, an unknown model): permanent, the job fails at once with that message;
* :class:`JobCancelledError` (raised by the reporter when the job was cancelled): the job ends
  ``cancelled``;
* anything else: transient, retried with backoff until the job's ``max_attempts``.
"""

from __future__ import annotations

from typing import Protocol

from domain.errors import DomainError
from domain.jobs import Job, JobStage


class JobCancelledError(DomainError):
    """Raised inside a running job when someone cancelled it; the runner ends it cancelled."""

    code = "job-cancelled"


class ProgressReporter(Protocol):
    async def __call__(self, stage: JobStage, progress: float, message: str | None = None) -> None:
        """Record progress of the running job (0..1 over the whole job, never backwards) and
        broadcast it. Raises :class:`JobCancelledError` when the job was cancelled meanwhile,
        so handlers honour cancellation between stages by reporting progress."""


class JobHandler(Protocol):
    async def __call__(self, job: Job, progress: ProgressReporter) -> None:
        """Do the job's work. Must be idempotent with respect to a previous attempt that died
        half-way (e.g. overwrite blobs by deterministic keys, insert the result only once)."""
