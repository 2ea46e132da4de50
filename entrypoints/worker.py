"""``hounsfield worker``: Dramatiq worker processes that run queued jobs.

Each process bootstraps its own container (database pool, blob store, event bus, the job
runner) on an asyncio loop in a background thread, declares the job actor on its own broker
and consumes with ``threads`` Dramatiq worker threads; every message is one
``JobRunner.run(job_id)`` on that loop, acknowledged once the job's outcome is committed. A
recovery sweep runs at start and every ``job_sweep_interval_s``.

SIGTERM (or Ctrl-C) stops a process gracefully: it takes no new messages (prefetched ones go
back to the broker), running jobs get ``grace_s`` to finish, and a job still running then goes
back to the queue at its next progress report (one that makes no report within another
2 x ``grace_s`` is stopped and handed back then, its attempt not counted either). A process
killed outright (SIGKILL, a lost machine) leaves its job ``running`` until the lease expires;
then any other worker's sweep queues it again.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from types import FrameType
from typing import Any, TypeVar
from uuid import UUID

import dramatiq
import structlog

from adapters.queue import build_job_actor
from domain.errors import DomainError
from entrypoints.bootstrap import Container, bootstrap
from entrypoints.jobs import SHUTDOWN_GRACE_S, sweeping
from entrypoints.logging import configure_logging
from entrypoints.settings import Settings, SettingsError

log = structlog.get_logger(__name__)

T = TypeVar("T")
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
IDLE_POLL_MS = 100


def run_workers(
    settings: Settings, *, processes: int, threads: int, grace_s: float = SHUTDOWN_GRACE_S
) -> int:
    """Run ``processes`` worker processes until SIGTERM/SIGINT; the exit status to use."""
    if not settings.broker_url:
        raise SettingsError(
            "hounsfield worker needs HOUNSFIELD_BROKER_URL (redis:// or amqp://); without a "
            "broker, hounsfield serve runs jobs itself"
        )
    if not settings.database_url:
        raise SettingsError(
            "hounsfield worker needs HOUNSFIELD_DATABASE_URL: workers and the API must share "
            "one PostgreSQL (the embedded one belongs to hounsfield serve)"
        )
    if processes == 1:
        return worker_process(settings, threads=threads, grace_s=grace_s)
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_child,
            args=(settings, threads, grace_s),
            name=f"hounsfield-worker-{number}",
        )
        for number in range(1, processes + 1)
    ]
    stopping = threading.Event()

    def forward(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in _STOP_SIGNALS}
    try:
        for child in children:
            child.start()
        for child in children:
            child.join()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [c.name for c in children if c.exitcode not in (0, -signal.SIGTERM)]
    if failed and not stopping.is_set():
        log.error("worker processes stopped unexpectedly", processes=failed)
    return 1 if failed else 0


def _child(settings: Settings, threads: int, grace_s: float) -> None:
    try:
        status = worker_process(settings, threads=threads, grace_s=grace_s)
    except DomainError as err:  # an unreachable database or broker: one line, as the CLI does
        print(f"Error: {' '.join(err.detail.split())}", file=sys.stderr)
        status = 1
    raise SystemExit(status)


def worker_process(settings: Settings, *, threads: int, grace_s: float) -> int:
    """One worker process: consume until SIGTERM/SIGINT, then stop gracefully."""
    configure_logging(level=settings.log_level, log_format=settings.effective_log_format)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda signum, frame: stop.set()) for sig in _STOP_SIGNALS}
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="jobs-loop", daemon=True)
    loop_thread.start()

    def call(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    resources = AsyncExitStack()
    try:
        container: Container = call(bootstrap(settings))
        resources.push_async_callback(container.aclose)
        queue = container.job_queue.dramatiq
        assert queue is not None  # a broker URL is configured
        call(queue.ping())  # an unreachable broker stops the worker now, in one line
        runner = container.job_queue.runner
        call(
            resources.enter_async_context(
                sweeping(
                    runner,
                    interval_s=settings.job_sweep_interval_s,
                    requeue_queued_at_start=False,
                )
            )
        )
        build_job_actor(
            queue.broker,
            lambda job_id: call(runner.run(UUID(job_id))),
            queue_name=queue.queue_name,
            # the runner retries jobs itself; Dramatiq retries only a run that could not
            # store its outcome (the database was unreachable)
            max_retries=20,
            min_backoff_ms=1_000,
            max_backoff_ms=60_000,
        )
        # an idle Redis consumer polls with backoff up to worker_timeout: it bounds how long
        # a new job waits for an idle worker (RabbitMQ pushes, so there it only paces stops)
        worker = dramatiq.Worker(queue.broker, worker_threads=threads, worker_timeout=IDLE_POLL_MS)
        worker.start()
        log.info("worker started", pid=os.getpid(), threads=threads, queue=queue.queue_name)
        stop.wait()
        log.info("worker stopping", pid=os.getpid(), grace_s=grace_s)
        stopper = threading.Thread(
            target=worker.stop, kwargs={"timeout": int(3 * grace_s * 1000)}, daemon=True
        )
        stopper.start()
        stopper.join(grace_s)
        if stopper.is_alive():
            runner.begin_shutdown()  # what still runs goes back at its next progress report
            stopper.join(2 * grace_s)
        if stopper.is_alive():
            # a job with no progress report since: stopped and handed back now, its attempt
            # not counted (it would otherwise wait for its lease and count as another one)
            started = time.monotonic()
            call(runner.hand_back_running(timeout_s=grace_s + 2))
            log.info("running jobs handed back", seconds=round(time.monotonic() - started, 2))
            stopper.join(grace_s)
        log.info("worker stopped", pid=os.getpid())
        return 0
    finally:
        try:
            call(resources.aclose())
        finally:
            loop.call_soon_threadsafe(loop.stop)
            loop_thread.join(timeout=10)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
