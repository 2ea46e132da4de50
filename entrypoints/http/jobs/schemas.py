"""API schemas of jobs, separate from the domain's ``Job``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

from domain.jobs import JobStage, JobStatus

ModelId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class JobCreate(msgspec.Struct, frozen=True, kw_only=True):
    """Name the study (its main image series is analysed) or one series of it."""

    model_id: ModelId
    study_id: UUID | None = None
    series_id: UUID | None = None


class JobEventCreate(msgspec.Struct, frozen=True, kw_only=True):
    """A status, progress or message report from a worker or an external processor."""

    status: Literal["running", "completed", "failed"] | None = None
    stage: JobStage | None = None
    progress: Fraction | None = None
    """Over the whole job, 0..1; it never goes backwards (a lower value keeps the higher)."""
    message: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class JobRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    centre_id: UUID
    study_id: UUID
    series_id: UUID | None
    model_id: str
    status: JobStatus
    stage: JobStage | None
    progress: float
    message: str | None
    attempts: int
    max_attempts: int
    error_message: str | None
    created_by: UUID | None
    created_at: datetime
    updated_at: datetime
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    lease_expires_at: datetime | None
    """Until when the worker running it holds it; a dead worker's job is taken over after."""
