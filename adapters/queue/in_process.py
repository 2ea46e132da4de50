"""In-process TaskQueue for the embedded default: an asyncio queue and N worker tasks.

Nothing is durable here: the database is the source of truth, and the recovery sweep at
start-up re-enqueues jobs that were queued or running when the process stopped.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import structlog

from domain.errors import InvalidInput, Unavailable
from domain.values import Id

_log = structlog.get_logger(__name__)

JobHandler = Callable[[str], Awaitable[object]]
"""Receives a job id (as a string, like the Dramatiq actor) and runs the job."""


class InProcessTaskQueue:
    """Runs ``handler(job_id)`` on ``workers`` asyncio tasks inside this process.

    Workers start with :meth:`start` (or the first :meth:`enqueue`), which needs a running
    event loop; :meth:`aclose` stops taking jobs, drops delayed and waiting ones, and lets the
    jobs already running finish (cancelling them only after ``timeout_s``, if given).
    """

    def __init__(self, handler: JobHandler, *, workers: int = 2) -> None:
        if workers < 1:
            raise InvalidInput(f"workers must be at least 1, got {workers}")
        self._handler = handler
        self._workers = workers
        self._queue: asyncio.Queue[str] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._closed = False

    async def start(self) -> None:
        self._ensure_started()

    async def enqueue(self, job_id: Id, *, delay_s: float = 0.0) -> None:
        if not math.isfinite(delay_s) or delay_s < 0:
            raise InvalidInput(f"delay_s must be a finite number >= 0, got {delay_s!r}")
        queue = self._ensure_started()
        if delay_s == 0:
            queue.put_nowait(str(job_id))
            return
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle

        def release() -> None:
            self._timers.discard(timer)
            if not self._closed:
                queue.put_nowait(str(job_id))

        timer = loop.call_later(delay_s, release)
        self._timers.add(timer)

    async def ping(self) -> None:
        if self._closed:
            raise Unavailable("in-process task queue is closed")
        if self._tasks and all(task.done() for task in self._tasks):
            raise Unavailable("in-process task queue has no running workers")

    async def aclose(self, *, timeout_s: float | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for task in self._tasks:
            if task not in self._busy:
                task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _ensure_started(self) -> asyncio.Queue[str]:
        if self._closed:
            raise Unavailable("in-process task queue is closed")
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._tasks = [
                asyncio.create_task(self._work(self._queue), name=f"task-queue-worker-{n}")
                for n in range(self._workers)
            ]
        return self._queue

    async def _work(self, queue: asyncio.Queue[str]) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._closed:
            job_id = await queue.get()
            self._busy.add(me)
            try:
                await self._handler(job_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("job handler failed", job_id=job_id)
            finally:
                self._busy.discard(me)
                queue.task_done()
