"""Watching a job: who may, and the coherent stream of updates a watcher sees."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.system import UuidIdGenerator
from domain.audit import AuditQuery
from domain.errors import NotFound, PermissionDenied
from domain.events import JobCompleted, JobEvent, JobFailed, JobProgressed, JobQueued
from domain.identity import Principal, PrincipalKind, Scope
from domain.jobs import Job, JobStage, JobStatus
from domain.services.job_watch import JobStream, JobWatchService
from domain.services.jobs import JobService
from domain.values import Page
from tests.unit.factories import T0, a_job
from tests.unit.identity_world import build_world


def event(
    job: Job, kind: type[JobEvent] = JobProgressed, seconds: float = 1, **fields: Any
) -> JobEvent:
    values: dict[str, Any] = {
        "at": T0 + timedelta(seconds=seconds),
        "centre_id": job.centre_id,
        "job_id": job.id,
        "status": JobStatus.RUNNING,
        "stage": JobStage.INFERENCE,
        "progress": 0.5,
    }
    return kind(**(values | fields))


def running_job(**changes: Any) -> Job:
    fields: dict[str, Any] = {
        "status": JobStatus.RUNNING,
        "stage": JobStage.LOADING,
        "progress": 0.1,
    }
    return a_job(**(fields | changes))


def test_the_stream_starts_with_the_job_as_it_was_read() -> None:
    job = running_job(message="reading slices")

    current = JobStream(job).current

    assert (current.job_id, current.status, current.stage, current.progress) == (
        job.id,
        JobStatus.RUNNING,
        JobStage.LOADING,
        0.1,
    )
    assert current.message == "reading slices"
    assert current.timestamp == job.updated_at
    assert not current.final


def test_an_event_no_newer_than_the_state_read_is_dropped() -> None:
    job = running_job()
    stream = JobStream(job)

    assert stream.accept(event(job, seconds=0, progress=0.9)) is None
    assert stream.accept(event(job, seconds=-5, progress=0.9)) is None
    assert stream.current.progress == 0.1


def test_a_change_becomes_an_update_with_the_events_fields() -> None:
    job = running_job()
    stream = JobStream(job)

    update = stream.accept(event(job, progress=0.4, message="patch 3 of 8"))

    assert update is not None
    assert (update.status, update.stage, update.progress, update.message) == (
        JobStatus.RUNNING,
        JobStage.INFERENCE,
        0.4,
        "patch 3 of 8",
    )
    assert update.timestamp == T0 + timedelta(seconds=1)
    assert stream.current == update


def test_progress_never_goes_backwards_when_a_job_is_run_again() -> None:
    job = running_job()
    stream = JobStream(job)
    stream.accept(event(job, progress=0.7))

    requeued = stream.accept(event(job, JobQueued, seconds=2, status=JobStatus.QUEUED, progress=0))
    restarted = stream.accept(event(job, seconds=3, stage=JobStage.LOADING, progress=0.0))

    assert requeued is not None and requeued.progress == 0.7
    assert restarted is not None and restarted.progress == 0.7


def test_after_a_final_state_only_a_retry_gets_through_and_starts_afresh() -> None:
    job = running_job()
    stream = JobStream(job)
    failed = stream.accept(
        event(job, JobFailed, status=JobStatus.FAILED, progress=0.6, message="unreadable")
    )
    assert failed is not None and failed.final

    late = stream.accept(event(job, seconds=2, progress=0.9))
    retried = stream.accept(event(job, JobQueued, seconds=3, status=JobStatus.QUEUED, progress=0))

    assert late is None
    assert retried is not None and retried.progress == 0.0 and not retried.final


def test_nothing_follows_completion() -> None:
    job = running_job()
    stream = JobStream(job)
    stream.accept(event(job, JobCompleted, status=JobStatus.COMPLETED, progress=1.0))

    assert stream.accept(event(job, JobQueued, seconds=2, status=JobStatus.QUEUED)) is None


def test_events_of_another_job_and_repeats_are_dropped() -> None:
    job = running_job()
    stream = JobStream(job)
    change = event(job, progress=0.3)

    assert stream.accept(event(running_job(), progress=0.3)) is None
    assert stream.accept(change) is not None
    assert stream.accept(change) is None


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=30))
def test_progress_seen_by_a_watcher_is_monotonic(progresses: list[float]) -> None:
    job = running_job(progress=0.0)
    stream = JobStream(job)
    seen = [stream.current.progress]
    for step, progress in enumerate(progresses, start=1):
        update = stream.accept(event(job, seconds=step, progress=progress))
        if update is not None:
            seen.append(update.progress)

    assert seen == sorted(seen)


# -- the use case -------------------------------------------------------------------------


class NoQueue:
    """Watching never sends a job anywhere."""

    async def enqueue(self, job_id: uuid.UUID, *, delay_s: float = 0.0) -> None:
        raise AssertionError("watching a job must not enqueue it")

    async def ping(self) -> None:
        return None


class NoModels:
    def get(self, model_id: str) -> None:
        return None

    def list(self) -> list[object]:
        return []

    def problems(self) -> list[object]:
        return []


def watch_service(world: Any) -> JobWatchService:
    """Watching on the real JobService: the same visibility as reading a job."""
    jobs = JobService(
        uow=world.db.unit_of_work,
        queue=NoQueue(),
        models=NoModels(),  # type: ignore[arg-type]
        clock=world.clock,
        ids=UuidIdGenerator(),
        auditor=world.auditor,
    )
    return JobWatchService(jobs=jobs, auditor=world.auditor)


async def stored(world: Any, job: Job) -> Job:
    async with world.db.unit_of_work() as uow:
        await uow.jobs.add(job)
        await uow.commit()
    return job


async def test_a_member_of_the_jobs_centre_may_watch_it_and_it_is_audited() -> None:
    world = await build_world()
    service = watch_service(world)
    job = await stored(world, running_job(centre_id=world.centre_a))

    stream = await service.watch(world.as_("technician-a"), job.id)

    assert stream.current.job_id == job.id
    trail = await world.audit.query(AuditQuery(resource_id=str(job.id)), Page())
    assert [e.action for e in trail] == ["job.watch"]


async def test_a_job_of_another_centre_is_not_found_like_an_unknown_one() -> None:
    world = await build_world()
    service = watch_service(world)
    job = await stored(world, running_job(centre_id=world.centre_a))

    missing = uuid4()
    with pytest.raises(NotFound) as foreign:
        await service.watch(world.as_("technician-b"), job.id)
    with pytest.raises(NotFound) as unknown:
        await service.watch(world.as_("technician-b"), missing)

    assert str(foreign.value) == f"job {job.id} was not found"
    assert str(unknown.value) == f"job {missing} was not found"
    assert await world.audit.query(AuditQuery(resource_id=str(job.id)), Page()) == []


async def test_a_key_without_jobs_read_may_not_watch() -> None:
    world = await build_world()
    service = watch_service(world)
    job = await stored(world, running_job(centre_id=world.centre_a))
    key = Principal(
        kind=PrincipalKind.API_KEY,
        id=uuid4(),
        role=None,
        centre_id=world.centre_a,
        scopes=frozenset({Scope.STUDIES_READ}),
    )

    with pytest.raises(PermissionDenied, match="jobs:read"):
        await service.watch(key, job.id)
