"""Wiring of durable jobs: the task queue the settings ask for, the runner, the sweeps.

With ``HOUNSFIELD_BROKER_URL`` set, job ids go to Dramatiq (Redis or RabbitMQ) and
``hounsfield worker`` processes run them; without it, an in-process queue runs them on
asyncio tasks inside ``hounsfield serve``. Either way the database decides what runs (see
``domain.services.job_runner``), and :func:`sweeping` queues again what was lost.
:func:`staging_sweeping` deletes staged uploads nobody ingested, in each API process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog

from adapters.queue import DramatiqTaskQueue, InProcessTaskQueue, broker_from_url
from domain.ports.blobs import BlobStore
from domain.ports.messaging import TaskQueue
from domain.ports.services import Clock
from domain.services.job_runner import JobRunner, JobRunnerSettings
from domain.services.staging import sweep_staging
from entrypoints.settings import Settings

if TYPE_CHECKING:  # bootstrap builds the job queue from this module
    from entrypoints.bootstrap import Container

log = structlog.get_logger(__name__)

SHUTDOWN_GRACE_S = 30.0
"""How long a stopping process lets running jobs finish before handing them back."""


def runner_settings(settings: Settings) -> JobRunnerSettings:
    return JobRunnerSettings(
        lease_s=settings.job_lease_s,
        retry_backoff_s=settings.job_retry_backoff_s,
        retry_backoff_max_s=settings.job_retry_backoff_max_s,
        requeue_after_s=settings.job_requeue_after_s,
    )


class JobQueue:
    """The task queue of this process and the runner it feeds (bound after both exist).

    The in-process queue calls the runner, and the runner sends retries through the queue:
    the queue is built first with a handler that reaches the runner once :meth:`bind` ran.
    """

    def __init__(self, settings: Settings) -> None:
        self._runner: JobRunner | None = None
        self.dramatiq: DramatiqTaskQueue | None = None
        self.in_process: InProcessTaskQueue | None = None
        self.queue: TaskQueue
        if settings.broker_url:
            self.dramatiq = DramatiqTaskQueue(
                broker_from_url(settings.broker_url), queue_name=settings.job_queue_name
            )
            self.queue = self.dramatiq
        else:
            self.in_process = InProcessTaskQueue(self._run, workers=settings.job_threads)
            self.queue = self.in_process

    def bind(self, runner: JobRunner) -> None:
        self._runner = runner

    @property
    def runner(self) -> JobRunner:
        if self._runner is None:
            raise RuntimeError("JobQueue.bind(runner) was not called")
        return self._runner

    async def _run(self, job_id: str) -> None:
        await self.runner.run(UUID(job_id))

    async def aclose(self, *, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Stop taking jobs; running in-process jobs get ``grace_s`` to finish, then go back
        to the queue at their next progress report; what has made no report after another
        ``grace_s`` is stopped and handed back (the attempt not counted either way)."""
        runner = self._runner
        if self.in_process is not None:
            if runner is not None:
                runner.stop_claiming()  # the next start's sweep queues waiting jobs again
            closing = asyncio.create_task(self.in_process.aclose(timeout_s=3 * grace_s))
            done, _ = await asyncio.wait({closing}, timeout=grace_s)
            if not done and runner is not None:
                runner.begin_shutdown()
                done, _ = await asyncio.wait({closing}, timeout=grace_s)
                if not done:
                    await runner.hand_back_running(timeout_s=grace_s)
            await closing
        if self.dramatiq is not None:
            await self.dramatiq.aclose()
            self.dramatiq.broker.close()


@contextlib.asynccontextmanager
async def sweeping(
    runner: JobRunner, *, interval_s: float, requeue_queued_at_start: bool
) -> AsyncIterator[None]:
    """Run the recovery sweep now and every ``interval_s`` while the block runs.

    ``requeue_queued_at_start``: an in-process queue starts empty, so every queued job is
    sent at once; a broker still holds its messages, so only long-waiting ones are.
    """
    await _sweep(runner, 0.0 if requeue_queued_at_start else None)

    async def periodically() -> None:
        while True:
            await asyncio.sleep(interval_s)
            await _sweep(runner, None)

    async with _in_background(periodically(), name="job-recovery-sweep"):
        yield


async def _sweep(runner: JobRunner, requeue_queued_after_s: float | None) -> None:
    try:
        sent = await runner.recover(requeue_queued_after_s=requeue_queued_after_s)
    except Exception:  # the next sweep tries again; a sweep must never stop the process
        log.exception("job recovery sweep failed")
        return
    if sent:
        log.info("job recovery sweep queued jobs again", count=sent)


@contextlib.asynccontextmanager
async def api_process_sweeps(container: Container) -> AsyncIterator[None]:
    """What every API process runs beside serving, while the block runs: the job recovery
    sweep and the sweep of abandoned staged uploads."""
    settings = container.settings
    async with (
        sweeping(
            container.job_queue.runner,
            interval_s=settings.job_sweep_interval_s,
            requeue_queued_at_start=container.job_queue.in_process is not None,
        ),
        staging_sweeping(
            container.blob_store,
            container.clock,
            older_than_s=settings.staging_ttl_s,
            interval_s=settings.job_sweep_interval_s,
        ),
    ):
        yield


@contextlib.asynccontextmanager
async def staging_sweeping(
    blobs: BlobStore, clock: Clock, *, older_than_s: float, interval_s: float
) -> AsyncIterator[None]:
    """Delete staged uploads older than ``older_than_s`` now and every ``interval_s``
    while the block runs, in the background (a slow listing never delays start-up).

    Several API processes sweeping the same store at once is harmless: deleting a missing
    object is not an error.
    """

    async def periodically() -> None:
        while True:
            await sweep_staging_once(blobs, clock.now(), older_than_s=older_than_s)
            await asyncio.sleep(interval_s)

    async with _in_background(periodically(), name="staging-sweep"):
        yield


@contextlib.asynccontextmanager
async def _in_background(work: Coroutine[Any, Any, None], *, name: str) -> AsyncIterator[None]:
    """Run ``work`` as a task while the block runs; cancel it (and wait for it) after."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def sweep_staging_once(blobs: BlobStore, now: datetime, *, older_than_s: float) -> int:
    """One staging sweep; a failure is logged (by type only) and counts as nothing deleted."""
    try:
        return await sweep_staging(blobs, now=now, older_than_s=older_than_s)
    except Exception as err:  # the next sweep tries again; a sweep must never stop the process
        # by type only: a store's message may name a staged key, whose file name may be a
        # patient's name
        log.error("staging sweep failed", error=type(err).__name__)
        return 0
