"""Runs queued jobs durably: claim, lease and heartbeat, progress, outcome, retries, recovery.

A queue message carries only a job id; what happens is decided by the job's row:

* **claim**: one transaction moves the job ``queued -> running`` (attempts + 1, a lease until
  now + ``lease_s``). The update is guarded by the row's version, so of two workers holding
  the same id only one runs it; a message for a job that is not queued is dropped.
* **while it runs**: a heartbeat extends the lease every ``lease_s / 3``; the progress
  reporter stores progress and broadcasts it, and raises ``JobCancelledError`` once the job
  was cancelled. Every write checks that the job is still this run's (running, same attempt):
  a worker that lost its lease (another one took the job over) stops and writes nothing.
* **outcome**: committed before :meth:`JobRunner.run` returns, so a queue acknowledges the
  message only after it. Permanent errors (``InvalidInput``, ``NotFound``) fail the job at
  once; other exceptions send it back to the queue with exponential backoff until
  ``max_attempts``, then fail it with the last error.
* **recovery** (:meth:`JobRunner.recover`): pending jobs, queued jobs nobody picked up for a
  while, and running jobs whose lease expired (their worker died) are queued again.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from domain.errors import ConcurrentModification, InvalidInput, NotFound
from domain.events import (
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgressed,
    JobQueued,
    JobStarted,
)
from domain.jobs import Job, JobStage, JobStatus
from domain.ports.jobs import JobCancelledError, JobHandler
from domain.ports.messaging import TaskQueue
from domain.ports.services import Clock
from domain.ports.unit_of_work import UnitOfWorkFactory
from domain.services.jobs import MAX_MESSAGE_CHARS, clip_message, job_event
from domain.values import Id

_log = logging.getLogger(__name__)

PERMANENT_FAILURES: tuple[type[Exception], ...] = (InvalidInput, NotFound)
"""What a retry cannot fix (see ``domain.ports.jobs``): the job fails at once."""

_WRITE_TRIES = 5


class RunOutcome(enum.StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    RETRYING = "retrying"
    """A transient fault: back on the queue, with a delay."""
    HANDED_BACK = "handed_back"
    """The process is shutting down: back on the queue, the attempt not counted."""
    SKIPPED = "skipped"
    """Not queued (unknown, already taken, finished): nothing to do."""
    LOST = "lost"
    """Another worker took the job over after this one's lease expired."""


class LeaseLost(Exception):
    """The job is no longer this run's: its lease expired and it was queued or taken again."""


class _HandBack(Exception):
    """Raised inside a handler when the process shuts down: the job goes back to the queue."""


class JobRunnerSettings(msgspec.Struct, frozen=True, kw_only=True):
    lease_s: float = 60.0
    """How long a claim lasts without a heartbeat; a dead worker's job waits this long."""
    retry_backoff_s: float = 5.0
    """Delay before the second attempt; doubled for each further one."""
    retry_backoff_max_s: float = 300.0
    requeue_after_s: float = 900.0
    """A queued job no worker took for this long is sent to the queue again by the sweep
    (its message may have been lost); must exceed ``retry_backoff_max_s``."""

    def __post_init__(self) -> None:
        if self.lease_s <= 0 or self.retry_backoff_s < 0 or self.retry_backoff_max_s < 0:
            raise InvalidInput("lease_s must be > 0 and the backoff delays >= 0")
        if self.requeue_after_s <= self.retry_backoff_max_s:
            raise InvalidInput("requeue_after_s must exceed retry_backoff_max_s")

    def backoff_s(self, attempts: int) -> float:
        """The delay after failed attempt number ``attempts`` (1-based)."""
        return float(min(self.retry_backoff_max_s, self.retry_backoff_s * 2 ** (attempts - 1)))


class JobRunner:
    """Runs one job per :meth:`run` call; safe to call concurrently and from many processes."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        queue: TaskQueue,
        handler: JobHandler,
        clock: Clock,
        settings: JobRunnerSettings | None = None,
    ) -> None:
        self._uow = uow
        self._queue = queue
        self._handler = handler
        self._clock = clock
        self._settings = settings or JobRunnerSettings()
        self._claiming = True
        self._stopping = False
        self._running: dict[Id, tuple[asyncio.Task[None], asyncio.Event]] = {}
        """The handler task of each job this runner is running, and what is set once the
        run's outcome is stored."""
        self._handed_back: set[Id] = set()
        """Jobs whose handler :meth:`hand_back_running` cancelled."""

    @property
    def settings(self) -> JobRunnerSettings:
        return self._settings

    def stop_claiming(self) -> None:
        """Take no new jobs (their messages are dropped: only for queues that start empty,
        whose jobs the next start's sweep queues again); running ones go on."""
        self._claiming = False

    def begin_shutdown(self) -> None:
        """Running jobs go back to the queue at their next progress report; no new claims."""
        self._claiming = False
        self._stopping = True

    async def hand_back_running(self, *, timeout_s: float = 30.0) -> None:
        """The last step of a shutdown: what still runs (a job that made no progress report
        since :meth:`begin_shutdown`) is stopped and goes back to the queue, its attempt not
        counted, instead of staying ``running`` until its lease expires and the sweep counts
        the rerun as another attempt. Returns once those jobs are back on the queue, or after
        ``timeout_s``.

        A handler's work in another thread cannot be stopped; it goes on until the process
        exits, and nothing it would still write is stored (the job is no longer its run's).
        """
        self.begin_shutdown()
        settled = []
        for job_id, (work, done) in list(self._running.items()):
            self._handed_back.add(job_id)
            work.cancel()
            settled.append(asyncio.ensure_future(done.wait()))
        if settled:
            await asyncio.wait(settled, timeout=timeout_s)
            for waiting in settled:
                waiting.cancel()

    async def run(self, job_id: Id) -> RunOutcome:
        """Run job ``job_id`` if it is queued; returns once its outcome is committed."""
        if not self._claiming:
            return RunOutcome.SKIPPED
        job = await self._claim(job_id)
        if job is None:
            return RunOutcome.SKIPPED
        work = asyncio.create_task(self._handler(job, self._reporter(job)))
        done = asyncio.Event()
        self._running[job.id] = (work, done)
        try:
            return await self._run(job, work)
        finally:
            del self._running[job.id]
            self._handed_back.discard(job.id)
            done.set()

    async def _run(self, job: Job, work: asyncio.Task[None]) -> RunOutcome:
        heartbeat = asyncio.create_task(self._heartbeat(job, work))
        try:
            try:
                await work
            finally:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
        except BaseException as err:  # every fault decides the job's fate
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            if isinstance(err, asyncio.CancelledError) and not work.cancelled():
                raise  # this coroutine was cancelled, not the handler
            return await self._settle(job, err)
        return await self._finish(job, lambda j: j.complete(at=self._clock.now()), JobCompleted)

    async def recover(
        self, *, requeue_queued_after_s: float | None = None, limit: int = 1000
    ) -> int:
        """Queue again what should be on a queue; returns how many ids were sent.

        Pending jobs and running jobs whose lease expired (their worker died) always; queued
        jobs only when they have waited ``requeue_queued_after_s`` (default the settings'
        ``requeue_after_s``; 0 at the start of an in-process queue, which starts empty).
        """
        wait_s = (
            self._settings.requeue_after_s
            if requeue_queued_after_s is None
            else requeue_queued_after_s
        )
        now = self._clock.now()
        async with self._uow() as uow:
            candidates = await uow.jobs.list_recoverable(now, limit)
        sent = 0
        for job in candidates:
            if job.status is JobStatus.QUEUED:
                waited_since = job.queued_at or job.updated_at
                if waited_since > now - timedelta(seconds=wait_s):
                    continue
                if not await self._touch_queued(job, now):
                    continue
            else:
                recovered = await self._recover_one(job, now)
                if recovered is None or recovered.status is not JobStatus.QUEUED:
                    continue
            if await self._send(job.id, 0.0):
                sent += 1
        return sent

    # -- claiming and writing ------------------------------------------------------------

    async def _claim(self, job_id: Id) -> Job | None:
        async with self._uow() as uow:
            job = await uow.jobs.get(job_id)
            if job is None or job.status is not JobStatus.QUEUED:
                return None
            now = self._clock.now()
            started = job.start(at=now, lease_until=self._lease_until(now))
            try:
                stored = await uow.jobs.update(started)
            except ConcurrentModification:
                return None  # another worker claimed it first
            uow.collect(job_event(JobStarted, stored))
            await uow.commit()
        _log.info("job %s started (attempt %d of %d)", job_id, stored.attempts, stored.max_attempts)
        return stored

    async def _write(
        self, mine: Job, change: Callable[[Job], Job], event: type[JobEvent] | None
    ) -> Job:
        """Apply ``change`` to the stored job if it is still this run's.

        Raises:
            JobCancelledError: the job was cancelled meanwhile.
            LeaseLost: the job is no longer running under this attempt.
        """
        for attempt in range(_WRITE_TRIES):
            async with self._uow() as uow:
                job = await uow.jobs.get(mine.id)
                if job is not None and job.status is JobStatus.CANCELLED:
                    raise JobCancelledError(f"job {mine.id} was cancelled")
                if (
                    job is None
                    or job.status is not JobStatus.RUNNING
                    or job.attempts != mine.attempts
                ):
                    raise LeaseLost(f"job {mine.id} is no longer run by this worker")
                try:
                    stored = await uow.jobs.update(change(job))
                except ConcurrentModification:
                    if attempt == _WRITE_TRIES - 1:
                        raise
                    continue
                if event is not None:
                    uow.collect(job_event(event, stored))
                await uow.commit()
                return stored
        raise AssertionError("unreachable")

    def _reporter(self, mine: Job) -> _Reporter:
        return _Reporter(self, mine)

    async def _heartbeat(self, mine: Job, work: asyncio.Task[None]) -> None:
        interval_s = self._settings.lease_s / 3
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self._write(
                    mine,
                    lambda j: j.extend_lease(
                        until=self._lease_until(self._clock.now()), at=self._clock.now()
                    ),
                    None,
                )
            except (JobCancelledError, LeaseLost):
                work.cancel()  # nothing this run does can be stored any more
                return
            except Exception:  # a missed beat is retried; the lease has slack
                _log.warning("job %s: heartbeat failed", mine.id, exc_info=True)

    async def _store(
        self, mine: Job, change: Callable[[Job], Job], event: type[JobEvent]
    ) -> Job | RunOutcome:
        """Write the run's outcome; the outcome instead when the job is no longer this run's."""
        try:
            return await self._write(mine, change, event)
        except JobCancelledError:
            return RunOutcome.CANCELLED
        except LeaseLost:
            _log.warning("job %s: lease lost; the outcome of this run was dropped", mine.id)
            return RunOutcome.LOST

    async def _finish(
        self, mine: Job, change: Callable[[Job], Job], event: type[JobEvent]
    ) -> RunOutcome:
        stored = await self._store(mine, change, event)
        if isinstance(stored, RunOutcome):
            return stored
        _log.info("job %s %s", mine.id, stored.status.value)
        return RunOutcome(stored.status.value)

    async def _settle(self, mine: Job, err: BaseException) -> RunOutcome:
        """The handler did not finish normally: decide the job's fate from what it raised."""
        if isinstance(err, JobCancelledError):
            return RunOutcome.CANCELLED
        if isinstance(err, LeaseLost):
            return RunOutcome.LOST
        if isinstance(err, asyncio.CancelledError) and mine.id in self._handed_back:
            err = _HandBack("the worker is shutting down")
        elif isinstance(err, asyncio.CancelledError):
            # the heartbeat stopped it: cancelled or taken over; the stored state says which
            async with self._uow() as uow:
                job = await uow.jobs.get(mine.id)
            cancelled = job is not None and job.status is JobStatus.CANCELLED
            return RunOutcome.CANCELLED if cancelled else RunOutcome.LOST
        now = self._clock.now()
        if isinstance(err, _HandBack):
            # not the job's fault: the attempt does not count
            return await self._requeue(
                mine,
                lambda j: msgspec.structs.replace(j.release(at=now), attempts=j.attempts - 1),
                0.0,
                RunOutcome.HANDED_BACK,
            )
        message = _describe(err)
        if isinstance(err, PERMANENT_FAILURES) or mine.attempts >= mine.max_attempts:
            _log.warning("job %s failed on attempt %d: %s", mine.id, mine.attempts, message)
            return await self._finish(mine, lambda j: j.fail(message, at=now), JobFailed)
        _log.warning("job %s: attempt %d failed, retrying", mine.id, mine.attempts, exc_info=err)
        return await self._requeue(
            mine,
            lambda j: j.release(at=now, error_message=message),
            self._settings.backoff_s(mine.attempts),
            RunOutcome.RETRYING,
        )

    async def _requeue(
        self, mine: Job, change: Callable[[Job], Job], delay_s: float, outcome: RunOutcome
    ) -> RunOutcome:
        """Committed back to ``queued`` first, then sent (a lost send is the sweep's job)."""
        stored = await self._store(mine, change, JobQueued)
        if isinstance(stored, RunOutcome):
            return stored
        await self._send(mine.id, delay_s)
        return outcome

    async def _touch_queued(self, job: Job, now: datetime) -> bool:
        """Mark a waiting job as sent again now, so the next sweep waits before resending it
        (while no worker runs, its queue does not fill with copies of the same id)."""
        async with self._uow() as uow:
            try:
                await uow.jobs.update(msgspec.structs.replace(job, queued_at=now))
            except ConcurrentModification:
                return False  # a worker took it meanwhile
            await uow.commit()
        return True

    async def _recover_one(self, job: Job, now: datetime) -> Job | None:
        """A pending job, or a running one whose worker stopped renewing its lease."""
        event: type[JobEvent]
        if job.status is JobStatus.PENDING:
            change, event = job.enqueue(at=now), JobQueued
        elif job.attempts >= job.max_attempts:
            message = (
                f"the worker running attempt {job.attempts} of {job.max_attempts} stopped "
                "responding (lease expired)"
            )
            change, event = job.fail(message, at=now), JobFailed
        else:
            change = job.release(
                at=now, error_message="the worker stopped responding (lease expired)"
            )
            event = JobQueued
        async with self._uow() as uow:
            try:
                stored = await uow.jobs.update(change)
            except ConcurrentModification:
                return None  # its worker renewed the lease, or another sweep got there first
            uow.collect(job_event(event, stored))
            await uow.commit()
        _log.info("job %s recovered: now %s", job.id, stored.status.value)
        return stored

    async def _send(self, job_id: Id, delay_s: float) -> bool:
        try:
            await self._queue.enqueue(job_id, delay_s=delay_s)
        except Exception as err:  # it stays queued; the next sweep sends it
            _log.warning("job %s could not be queued yet: %s", job_id, err)
            return False
        return True

    def _lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self._settings.lease_s)


class _Reporter:
    """The ProgressReporter of one run: stores progress, broadcasts it, honours cancel."""

    def __init__(self, runner: JobRunner, mine: Job) -> None:
        self._runner = runner
        self._mine = mine

    async def __call__(self, stage: JobStage, progress: float, message: str | None = None) -> None:
        runner = self._runner
        if runner._stopping:
            raise _HandBack("the worker is shutting down")
        if not 0.0 <= progress <= 1.0:
            raise InvalidInput(f"progress must be within 0..1, got {progress}")
        now = runner._clock.now()
        await runner._write(
            self._mine,
            lambda j: j.report_progress(
                stage=stage, progress=progress, message=clip_message(message), at=now
            ),
            JobProgressed,
        )


def _describe(err: BaseException) -> str:
    detail = getattr(err, "detail", None)
    text = detail if isinstance(detail, str) else f"{type(err).__name__}: {err}".rstrip(": ")
    return (" ".join(text.split()) or type(err).__name__)[:MAX_MESSAGE_CHARS]
