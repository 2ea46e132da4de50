"""The job runner's durability rules, on the in-memory database and on PostgreSQL.

Handlers are defined here (the real one is the analysis service); the queue is a recording
fake, so each test decides when a queued id is run. Time is a ManualClock: leases expire when a
test moves it, never by waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID, uuid4

import msgspec
import pytest

from adapters.memory import MemoryAuditLog, MemoryDatabase
from adapters.memory.clock import ManualClock
from adapters.system import UuidIdGenerator
from domain.errors import InvalidInput, NotFound, PermissionDenied, Unavailable
from domain.events import (
    DomainEvent,
    JobFailed,
    JobProgressed,
)
from domain.identity import Centre, Principal, PrincipalKind, Role, Scope
from domain.jobs import Job, JobStage, JobStatus
from domain.ports import UnitOfWorkFactory
from domain.ports.inference import ModelManifest
from domain.ports.jobs import JobCancelledError, ProgressReporter
from domain.ports.repositories import JobFilter
from domain.services.auditing import Auditor
from domain.services.job_runner import JobRunner, JobRunnerSettings, RunOutcome
from domain.services.jobs import JobReport, JobService, SubmitJob
from domain.values import Page
from tests.unit.factories import T0, a_study

MODEL = "demo-lesion-unet"
Handler = Callable[[Job, ProgressReporter], Awaitable[None]]


class RecordingBus:
    def __init__(self) -> None:
        self.published: list[DomainEvent] = []

    async def publish(self, event: DomainEvent) -> None:
        self.published.append(event)

    async def subscribe(self, key: str) -> AsyncIterator[DomainEvent]:
        for event in list(self.published):
            yield event


@dataclass
class RecordingQueue:
    """A TaskQueue that keeps what was sent; ``fail`` makes it refuse like a broker that is down."""

    sent: list[tuple[UUID, float]] = field(default_factory=list)
    fail: bool = False

    async def enqueue(self, job_id: UUID, *, delay_s: float = 0.0) -> None:
        if self.fail:
            raise Unavailable("broker down")
        self.sent.append((job_id, delay_s))

    async def ping(self) -> None:
        return None


class Models:
    def get(self, model_id: str) -> ModelManifest | None:
        return object() if model_id == MODEL else None  # type: ignore[return-value]

    def list(self) -> list[ModelManifest]:
        return []

    def problems(self) -> list[object]:
        return []


@dataclass
class World:
    uow: UnitOfWorkFactory
    bus: RecordingBus
    clock: ManualClock
    queue: RecordingQueue
    jobs: JobService
    technician: Principal
    outsider: Principal
    admin: Principal
    study_id: UUID
    calls: list[UUID] = field(default_factory=list)

    def runner(self, handler: Handler, **settings: float) -> JobRunner:
        async def counted(job: Job, progress: ProgressReporter) -> None:
            self.calls.append(job.id)
            await handler(job, progress)

        return JobRunner(
            uow=self.uow,
            queue=self.queue,
            handler=counted,
            clock=self.clock,
            settings=JobRunnerSettings(lease_s=60, **settings),
        )

    async def submit(self) -> Job:
        return await self.jobs.submit(
            self.technician, SubmitJob(study_id=self.study_id, model_id=MODEL)
        )

    async def job(self, job_id: UUID) -> Job:
        async with self.uow() as uow:
            job = await uow.jobs.get(job_id)
        assert job is not None
        return job

    def events(self, job_id: UUID) -> list[str]:
        return [
            type(e).__name__ for e in self.bus.published if getattr(e, "job_id", None) == job_id
        ]


def a_principal(role: Role | None, centre_id: UUID | None, **changes: object) -> Principal:
    fields: dict[str, object] = {
        "kind": PrincipalKind.USER,
        "id": uuid4(),
        "role": role,
        "centre_id": centre_id,
        "display": "tester",
    }
    return Principal(**(fields | changes))  # type: ignore[arg-type]


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> tuple[UnitOfWorkFactory, RecordingBus]:
    bus = RecordingBus()
    if request.param == "memory":
        return MemoryDatabase(event_bus=bus).unit_of_work, bus
    from adapters.postgres.unit_of_work import PostgresUnitOfWork

    pool = request.getfixturevalue("postgres_database").pool
    return (lambda: PostgresUnitOfWork(pool, event_bus=bus)), bus


@pytest.fixture
async def world(database: tuple[UnitOfWorkFactory, RecordingBus]) -> World:
    uow, bus = database
    clock = ManualClock(T0)
    centre = Centre(id=uuid4(), name="A", created_at=T0, updated_at=T0)
    other = Centre(id=uuid4(), name="B", created_at=T0, updated_at=T0)
    study = a_study(centre_id=centre.id)
    async with uow() as tx:
        await tx.centres.add(centre)
        await tx.centres.add(other)
        await tx.studies.add(study)
        await tx.commit()
    ids = UuidIdGenerator()
    queue = RecordingQueue()
    jobs = JobService(
        uow=uow,
        queue=queue,
        models=Models(),
        clock=clock,
        ids=ids,
        auditor=Auditor(log=MemoryAuditLog(), clock=clock, ids=ids),
        max_attempts=3,
    )
    return World(
        uow=uow,
        bus=bus,
        clock=clock,
        queue=queue,
        jobs=jobs,
        technician=a_principal(Role.TECHNICIAN, centre.id),
        outsider=a_principal(Role.TECHNICIAN, other.id),
        admin=a_principal(Role.ADMIN, None),
        study_id=study.id,
    )


async def three_stages(job: Job, progress: ProgressReporter) -> None:
    await progress(JobStage.LOADING, 0.1)
    await progress(JobStage.INFERENCE, 0.5, "window 1 of 2")
    await progress(JobStage.POSTPROCESSING, 0.9)


# -- submitting ----------------------------------------------------------------------------


async def test_a_submitted_job_is_committed_queued_before_its_id_is_sent(world: World) -> None:
    seen_at_send: list[JobStatus] = []

    class CheckingQueue(RecordingQueue):
        async def enqueue(self, job_id: UUID, *, delay_s: float = 0.0) -> None:
            seen_at_send.append((await world.job(job_id)).status)
            await super().enqueue(job_id, delay_s=delay_s)

    world.jobs._queue = CheckingQueue()

    job = await world.submit()

    assert seen_at_send == [JobStatus.QUEUED]
    assert job.status is JobStatus.QUEUED and job.attempts == 0
    assert world.events(job.id) == ["JobQueued"]


async def test_an_unknown_model_is_refused_and_nothing_is_stored(world: World) -> None:
    with pytest.raises(InvalidInput, match="not installed"):
        await world.jobs.submit(
            world.technician, SubmitJob(study_id=world.study_id, model_id="no-such-model")
        )

    assert await world.jobs.list(world.admin, JobFilter(), Page()) == []
    assert world.queue.sent == []


async def test_another_centres_study_and_job_are_not_found(world: World) -> None:
    job = await world.submit()

    with pytest.raises(NotFound):
        await world.jobs.submit(world.outsider, SubmitJob(study_id=world.study_id, model_id=MODEL))
    with pytest.raises(NotFound):
        await world.jobs.get(world.outsider, job.id)
    with pytest.raises(NotFound):
        await world.jobs.cancel(world.outsider, job.id)
    assert await world.jobs.list(world.outsider, JobFilter(), Page()) == []


async def test_a_job_the_broker_refused_is_sent_again_by_the_sweep(world: World) -> None:
    world.queue.fail = True
    job = await world.submit()
    world.queue.fail = False
    runner = world.runner(three_stages)

    assert (await world.job(job.id)).status is JobStatus.QUEUED
    assert await runner.recover() == 0  # not waited long enough: its message may be on its way
    assert await runner.recover(requeue_queued_after_s=0) == 1
    assert world.queue.sent == [(job.id, 0.0)]
    world.clock.advance(seconds=899)
    assert await runner.recover() == 0  # sent again a moment ago: no copies pile up
    world.clock.advance(seconds=2)
    assert await runner.recover() == 1


# -- running -------------------------------------------------------------------------------


async def test_a_job_runs_to_completion_with_progress_that_never_goes_back(world: World) -> None:
    job = await world.submit()
    stored: list[float] = []

    async def handler(job: Job, progress: ProgressReporter) -> None:
        await progress(JobStage.LOADING, 0.2)
        await progress(JobStage.INFERENCE, 0.1)  # behind: stays at 0.2
        stored.append((await world.job(job.id)).progress)
        await progress(JobStage.POSTPROCESSING, 0.8, "lesion 1 of 1")

    assert await world.runner(handler).run(job.id) is RunOutcome.COMPLETED

    done = await world.job(job.id)
    assert stored == [0.2]
    assert (done.status, done.progress, done.attempts) == (JobStatus.COMPLETED, 1.0, 1)
    assert done.finished_at is not None and done.lease_expires_at is None
    assert world.events(job.id) == [
        "JobQueued",
        "JobStarted",
        "JobProgressed",
        "JobProgressed",
        "JobProgressed",
        "JobCompleted",
    ]
    progressed = [e.progress for e in world.bus.published if isinstance(e, JobProgressed)]
    assert progressed == sorted(progressed)


async def test_a_job_that_is_not_queued_is_not_run_again(world: World) -> None:
    job = await world.submit()
    runner = world.runner(three_stages)
    await runner.run(job.id)

    assert await runner.run(job.id) is RunOutcome.SKIPPED
    assert await runner.run(uuid4()) is RunOutcome.SKIPPED
    assert world.calls == [job.id]


async def test_two_runners_racing_for_one_job_run_it_once(world: World) -> None:
    jobs = [await world.submit() for _ in range(5)]
    gate = asyncio.Event()

    async def slow(job: Job, progress: ProgressReporter) -> None:
        await gate.wait()
        await progress(JobStage.INFERENCE, 0.5)

    first, second = world.runner(slow), world.runner(slow)
    races = [
        asyncio.gather(first.run(job.id), second.run(job.id)) for job in jobs for _ in range(2)
    ]
    await asyncio.sleep(0.05)
    gate.set()
    outcomes = await asyncio.gather(*races)

    for pair in outcomes:
        assert sorted(pair) in (
            [RunOutcome.COMPLETED, RunOutcome.SKIPPED],
            [RunOutcome.SKIPPED] * 2,
        )
    assert sorted(world.calls) == sorted(job.id for job in jobs)
    for job in jobs:
        assert world.events(job.id).count("JobCompleted") == 1
        assert (await world.job(job.id)).attempts == 1


async def test_a_transient_fault_is_retried_with_growing_backoff_then_fails(
    world: World,
) -> None:
    job = await world.submit()

    async def flaky(job: Job, progress: ProgressReporter) -> None:
        await progress(JobStage.LOADING, 0.1)
        raise OSError("storage timed out")

    runner = world.runner(flaky, retry_backoff_s=2, retry_backoff_max_s=3, requeue_after_s=60)
    world.queue.sent.clear()

    first = await runner.run(job.id)
    after_first = await world.job(job.id)
    second = await runner.run(job.id)
    third = await runner.run(job.id)

    assert (first, second, third) == (RunOutcome.RETRYING, RunOutcome.RETRYING, RunOutcome.FAILED)
    assert after_first.status is JobStatus.QUEUED
    assert after_first.error_message == "OSError: storage timed out"
    assert world.queue.sent == [(job.id, 2.0), (job.id, 3.0)]
    failed = await world.job(job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 3)
    assert failed.error_message == "OSError: storage timed out"
    assert failed.dead_letter


async def test_bad_input_fails_the_job_at_once_with_its_message(world: World) -> None:
    job = await world.submit()

    async def unreadable(job: Job, progress: ProgressReporter) -> None:
        raise InvalidInput("series 1.2.3 has no readable image")

    assert await world.runner(unreadable).run(job.id) is RunOutcome.FAILED

    failed = await world.job(job.id)
    assert (failed.status, failed.attempts) == (JobStatus.FAILED, 1)
    assert failed.error_message == "series 1.2.3 has no readable image"
    assert not failed.dead_letter
    assert world.events(job.id)[-1] == "JobFailed"
    assert next(e for e in world.bus.published if isinstance(e, JobFailed)).message == (
        "series 1.2.3 has no readable image"
    )


async def test_cancellation_is_honoured_between_stages(world: World) -> None:
    job = await world.submit()
    reached: list[str] = []

    async def staged(job: Job, progress: ProgressReporter) -> None:
        await progress(JobStage.LOADING, 0.1)
        reached.append("loading")
        await world.jobs.cancel(world.technician, job.id)
        await progress(JobStage.INFERENCE, 0.5)
        reached.append("inference")

    assert await world.runner(staged).run(job.id) is RunOutcome.CANCELLED

    cancelled = await world.job(job.id)
    assert reached == ["loading"]
    assert cancelled.status is JobStatus.CANCELLED and cancelled.finished_at is not None
    assert world.events(job.id).count("JobCancelled") == 1
    assert "JobCompleted" not in world.events(job.id)


async def test_a_queued_job_cancelled_before_it_starts_never_runs(world: World) -> None:
    job = await world.submit()
    await world.jobs.cancel(world.technician, job.id)

    assert await world.runner(three_stages).run(job.id) is RunOutcome.SKIPPED
    assert world.calls == []
    with pytest.raises(Exception, match="cannot move from 'cancelled'"):
        await world.jobs.cancel(world.technician, job.id)


async def test_a_dead_workers_job_is_taken_over_after_its_lease_and_completes_once(
    world: World,
) -> None:
    job = await world.submit()
    hold = asyncio.Event()

    async def hangs(job: Job, progress: ProgressReporter) -> None:
        await progress(JobStage.LOADING, 0.1)
        await hold.wait()  # a worker that stopped (its heartbeat too: lease_s is long)
        await progress(JobStage.POSTPROCESSING, 0.9)

    dead = world.runner(hangs)
    first = asyncio.create_task(dead.run(job.id))
    while not world.calls:  # noqa: ASYNC110 - the handler is the test's, not worth an event
        await asyncio.sleep(0.01)
    sweeper = world.runner(three_stages)

    assert await sweeper.recover() == 0  # the lease still holds
    world.clock.advance(seconds=61)
    assert await sweeper.recover() == 1
    requeued = await world.job(job.id)
    taken_over = await sweeper.run(job.id)
    hold.set()
    first_outcome = await first

    assert requeued.status is JobStatus.QUEUED
    assert requeued.error_message == "the worker stopped responding (lease expired)"
    assert (taken_over, first_outcome) == (RunOutcome.COMPLETED, RunOutcome.LOST)
    done = await world.job(job.id)
    assert (done.status, done.attempts) == (JobStatus.COMPLETED, 2)
    assert world.events(job.id).count("JobCompleted") == 1
    seen = [e.progress for e in world.bus.published if getattr(e, "job_id", None) == job.id]
    assert seen == sorted(seen), "a watcher saw progress go backwards over the takeover"


async def test_a_job_whose_workers_keep_dying_fails_after_its_last_attempt(world: World) -> None:
    job = await world.submit()
    async with world.uow() as uow:
        stored = await uow.jobs.get(job.id)
        assert stored is not None
        running = stored.start(at=T0, lease_until=T0)
        await uow.jobs.update(msgspec.structs.replace(running, attempts=3))
        await uow.commit()
    world.clock.advance(seconds=1)

    assert await world.runner(three_stages).recover() == 0

    failed = await world.job(job.id)
    assert failed.status is JobStatus.FAILED and failed.dead_letter
    assert "stopped responding" in (failed.error_message or "")


async def test_a_heartbeat_keeps_a_long_job_from_being_taken_over(world: World) -> None:
    job = await world.submit()
    beats = asyncio.Event()

    async def long(job: Job, progress: ProgressReporter) -> None:
        while (await world.job(job.id)).version < 4:  # noqa: ASYNC110 - claim + two heartbeats
            await asyncio.sleep(0.02)
        beats.set()

    runner = JobRunner(
        uow=world.uow,
        queue=world.queue,
        handler=long,
        clock=world.clock,
        settings=JobRunnerSettings(lease_s=0.15, requeue_after_s=600),
    )
    run = asyncio.create_task(runner.run(job.id))
    await asyncio.wait_for(beats.wait(), timeout=10)

    assert await run is RunOutcome.COMPLETED


async def test_a_dead_letter_is_listed_for_admins_and_retried_with_fresh_attempts(
    world: World,
) -> None:
    job = await world.submit()
    failures = iter([OSError("a"), OSError("b"), OSError("c")])

    async def fails_three_times(job: Job, progress: ProgressReporter) -> None:
        error = next(failures, None)
        if error is not None:
            raise error

    runner = world.runner(fails_three_times, retry_backoff_s=0)
    for _ in range(3):
        await runner.run(job.id)

    with pytest.raises(PermissionDenied):
        await world.jobs.dead_letters(world.technician, Page())
    assert [j.id for j in await world.jobs.dead_letters(world.admin, Page())] == [job.id]
    with pytest.raises(PermissionDenied):
        await world.jobs.retry(world.technician, job.id)
    world.queue.sent.clear()

    retried = await world.jobs.retry(world.admin, job.id)

    assert (retried.status, retried.attempts) == (JobStatus.QUEUED, 0)
    assert world.queue.sent == [(job.id, 0.0)]
    assert await world.jobs.dead_letters(world.admin, Page()) == []
    assert await runner.run(job.id) is RunOutcome.COMPLETED
    with pytest.raises(InvalidInput, match="only a failed job"):
        await world.jobs.retry(world.admin, job.id)


async def test_a_shutting_down_worker_hands_its_job_back_without_using_an_attempt(
    world: World,
) -> None:
    job = await world.submit()

    async def interrupted(job: Job, progress: ProgressReporter) -> None:
        await progress(JobStage.LOADING, 0.1)
        runner.begin_shutdown()
        await progress(JobStage.INFERENCE, 0.5)
        raise AssertionError("a shutting-down worker must not go on")

    runner = world.runner(interrupted)
    world.queue.sent.clear()

    assert await runner.run(job.id) is RunOutcome.HANDED_BACK

    back = await world.job(job.id)
    assert (back.status, back.attempts) == (JobStatus.QUEUED, 0)
    assert world.queue.sent == [(job.id, 0.0)]
    assert await runner.run(job.id) is RunOutcome.SKIPPED  # no new claims while stopping


async def test_a_job_with_no_progress_report_after_the_grace_is_handed_back_at_once(
    world: World,
) -> None:
    job = await world.submit()
    started = asyncio.Event()

    async def silent(job: Job, progress: ProgressReporter) -> None:
        await progress(JobStage.LOADING, 0.1)
        started.set()
        await asyncio.Event().wait()  # one long step: no report would come for a while

    runner = world.runner(silent)
    world.queue.sent.clear()
    running = asyncio.create_task(runner.run(job.id))
    await asyncio.wait_for(started.wait(), timeout=5)

    runner.begin_shutdown()
    await asyncio.sleep(0.05)
    assert not running.done()  # the hand-back at the next report never comes
    await asyncio.wait_for(runner.hand_back_running(timeout_s=5), timeout=10)

    assert running.done() and running.result() is RunOutcome.HANDED_BACK
    back = await world.job(job.id)
    assert (back.status, back.attempts) == (JobStatus.QUEUED, 0)
    assert world.queue.sent == [(job.id, 0.0)]


async def test_a_heartbeat_cancelled_handler_is_not_taken_for_a_hand_back(world: World) -> None:
    job = await world.submit()

    async def cancelled_elsewhere(job: Job, progress: ProgressReporter) -> None:
        await world.jobs.cancel(world.technician, job.id)
        raise asyncio.CancelledError

    assert await world.runner(cancelled_elsewhere).run(job.id) is RunOutcome.CANCELLED
    assert (await world.job(job.id)).status is JobStatus.CANCELLED


async def test_a_cancelled_error_raised_by_a_handler_itself_ends_the_run_cancelled(
    world: World,
) -> None:
    job = await world.submit()

    async def cancels(job: Job, progress: ProgressReporter) -> None:
        await world.jobs.cancel(world.technician, job.id)
        raise JobCancelledError("stopped")

    assert await world.runner(cancels).run(job.id) is RunOutcome.CANCELLED
    assert (await world.job(job.id)).status is JobStatus.CANCELLED


# -- external processors -------------------------------------------------------------------


async def test_an_external_processor_reports_with_a_jobs_report_key(world: World) -> None:
    job = await world.submit()
    centre = world.technician.centre_id
    reporter = a_principal(
        None, centre, kind=PrincipalKind.API_KEY, scopes=frozenset({Scope.JOBS_REPORT})
    )
    reader = a_principal(
        None, centre, kind=PrincipalKind.API_KEY, scopes=frozenset({Scope.JOBS_READ})
    )

    with pytest.raises(PermissionDenied):
        await world.jobs.report_event(reader, job.id, JobReport(status=JobStatus.RUNNING))
    running = await world.jobs.report_event(
        reporter,
        job.id,
        JobReport(status=JobStatus.RUNNING, stage=JobStage.INFERENCE, progress=0.4),
    )
    done = await world.jobs.report_event(reporter, job.id, JobReport(status=JobStatus.COMPLETED))

    assert (running.status, running.progress, running.stage) == (
        JobStatus.RUNNING,
        0.4,
        JobStage.INFERENCE,
    )
    assert done.status is JobStatus.COMPLETED
    assert world.events(job.id)[-2:] == ["JobProgressed", "JobCompleted"]
    with pytest.raises(InvalidInput):
        await world.jobs.report_event(reporter, job.id, JobReport(progress=1.5))


def test_backoff_doubles_up_to_its_maximum() -> None:
    settings = JobRunnerSettings(retry_backoff_s=5, retry_backoff_max_s=30, requeue_after_s=60)

    assert [settings.backoff_s(n) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]
