"""Websocket routes at the root: ``/ws`` (subscribe to any number of jobs) and
``/ws/jobs/{job_id}`` (one job, closed when it ends). The protocol is in docs/api.md."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, Final

import structlog
from litestar import WebSocket, websocket
from litestar.params import FromPath

from domain.values import Id
from entrypoints.http.websockets.messages import (
    Ack,
    BadMessage,
    ClientMessage,
    ErrorMessage,
    parse_client_message,
)
from entrypoints.http.websockets.session import (
    GOING_AWAY,
    INTERNAL_ERROR,
    NORMAL_CLOSURE,
    NOT_FOUND,
    JobSocket,
)

log = structlog.get_logger(__name__)

MAX_SUBSCRIPTIONS: Final = 100
"""Jobs one ``/ws`` connection may follow at once."""


class Subscriptions:
    """The jobs one ``/ws`` connection follows: one streaming task per job."""

    def __init__(self, socket: JobSocket) -> None:
        self._socket = socket
        self._tasks: dict[Id, asyncio.Task[None]] = {}

    async def handle(self, message: ClientMessage) -> None:
        if message.action == "subscribe":
            await self._subscribe(message.job_id)
        else:
            await self._unsubscribe(message.job_id)

    async def _subscribe(self, job_id: Id) -> None:
        running = self._tasks.get(job_id)
        if running is not None and not running.done():
            await self._socket.send(Ack(action="subscribe", job_id=job_id))
            return
        self._forget_finished()
        if len(self._tasks) >= MAX_SUBSCRIPTIONS:
            await self._socket.send(
                ErrorMessage(
                    job_id=str(job_id),
                    detail=f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection",
                )
            )
            return
        self._tasks[job_id] = asyncio.create_task(self._guarded(job_id), name=f"ws-job-{job_id}")

    async def _guarded(self, job_id: Id) -> None:
        try:
            await self._socket.stream_job(job_id, acknowledge=True)
        except Exception:  # one broken stream must not take the connection down
            log.exception("job stream failed", job_id=str(job_id))
            await self._socket.send(
                ErrorMessage(
                    job_id=str(job_id), detail="updates of this job stopped (server error)"
                )
            )

    async def _unsubscribe(self, job_id: Id) -> None:
        task = self._tasks.pop(job_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # Unsubscribing from a job one does not follow is harmless: acknowledged all the same.
        await self._socket.send(Ack(action="unsubscribe", job_id=job_id))

    def _forget_finished(self) -> None:
        for job_id in [j for j, task in self._tasks.items() if task.done()]:
            del self._tasks[job_id]

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@websocket("/ws", name="ws-jobs")
async def job_updates(socket: WebSocket[Any, Any, Any]) -> None:
    """Subscribe to and unsubscribe from jobs; updates of every subscribed job."""
    connection = await JobSocket.open(socket)
    if connection is None:
        return
    subscriptions = Subscriptions(connection)
    try:
        async with connection.heartbeats():
            while (frame := await connection.receive_text()) is not None:
                if isinstance(frame, bytes):
                    await connection.send(
                        ErrorMessage(job_id=None, detail="send JSON in text frames")
                    )
                    continue
                try:
                    message = parse_client_message(frame)
                except BadMessage as bad:
                    await connection.send(ErrorMessage(job_id=bad.job_id, detail=bad.detail))
                    continue
                await subscriptions.handle(message)
    finally:
        await subscriptions.aclose()
        await connection.close(NORMAL_CLOSURE)


@websocket("/ws/jobs/{job_id:str}", name="ws-job")
async def one_job(socket: WebSocket[Any, Any, Any], job_id: FromPath[str]) -> None:
    """One job's state, then every change; closed (1000) once the job ends."""
    connection = await JobSocket.open(socket)
    if connection is None:
        return
    try:
        ident = uuid.UUID(job_id)
    except ValueError:
        await connection.send(ErrorMessage(job_id=job_id[:64], detail="job id is not a UUID"))
        await connection.close(NOT_FOUND, "job not found")
        return

    async def finished() -> None:
        await connection.close(NORMAL_CLOSURE, "job finished")

    async def refused(code: int) -> None:
        await connection.close(code, "job not found" if code == NOT_FOUND else "")

    async def stopping() -> None:
        await connection.close(GOING_AWAY, "server stopping")

    stream = asyncio.create_task(
        connection.stream_job(
            ident,
            acknowledge=False,
            on_final=finished,
            on_refused=refused,
            on_bus_closed=stopping,
        )
    )
    # Read (and ignore) client frames: that is how a client's going away is noticed.
    reader = asyncio.create_task(_drain(connection))
    try:
        async with connection.heartbeats():
            await asyncio.wait({stream, reader}, return_when=asyncio.FIRST_COMPLETED)
        if stream.done() and not stream.cancelled() and stream.exception() is not None:
            log.error("job stream failed", job_id=job_id, exc_info=stream.exception())
            await connection.close(INTERNAL_ERROR, "server error")
    finally:
        for task in (stream, reader):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(stream, reader, return_exceptions=True)
        await connection.close(NORMAL_CLOSURE)


async def _drain(connection: JobSocket) -> None:
    while await connection.receive_text() is not None:
        pass


WEBSOCKET_HANDLERS = [job_updates, one_job]
