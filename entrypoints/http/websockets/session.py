"""One websocket connection: who it is, serialised sends, heartbeats and job streams.

Authentication reuses the HTTP layer's credential resolution (header or ``token`` query
parameter). A connection that cannot be authenticated is accepted and closed at once with a
4xxx code that mirrors the HTTP status (4401, 4403, 4429): a browser sees the close code and
reason, whereas a refused handshake only shows it "failed".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

import msgspec
import structlog
from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from domain.errors import (
    DomainError,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from domain.events import JobEvent, job_channel
from domain.identity import Principal
from domain.services.job_watch import JobUpdate, JobWatchService
from domain.values import Id
from entrypoints.bootstrap import Container
from entrypoints.http.dependencies import CONTAINER_STATE_KEY
from entrypoints.http.security import authenticate, enforce_rate_limits
from entrypoints.http.websockets.messages import (
    Ack,
    ErrorMessage,
    Heartbeat,
    ServerMessage,
    job_message,
)

log = structlog.get_logger(__name__)

NORMAL_CLOSURE: Final = 1000
GOING_AWAY: Final = 1001
INTERNAL_ERROR: Final = 1011
TRY_AGAIN_LATER: Final = 1013
UNAUTHENTICATED: Final = 4401
FORBIDDEN: Final = 4403
NOT_FOUND: Final = 4404
TOO_MANY_REQUESTS: Final = 4429

_REFUSALS: Final[dict[type[DomainError], int]] = {
    Unauthenticated: UNAUTHENTICATED,
    PermissionDenied: FORBIDDEN,
    RateLimited: TOO_MANY_REQUESTS,
}
_ENCODER: Final = msgspec.json.Encoder()


class JobSocket:
    """An accepted, authenticated websocket. Sends are serialised (subscription tasks and the
    heartbeat share the connection) and stop quietly once the client is gone."""

    def __init__(
        self, socket: WebSocket[Any, Any, Any], container: Container, principal: Principal
    ) -> None:
        self._socket = socket
        self._container = container
        self.principal = principal
        self._watcher = JobWatchService(
            jobs=container.services.jobs, auditor=container.services.auditor
        )
        self._send_lock = asyncio.Lock()
        self._last_sent = time.monotonic()
        self.closed = False

    @classmethod
    async def open(cls, socket: WebSocket[Any, Any, Any]) -> JobSocket | None:
        """Authenticate and accept; ``None`` (the socket closed with a 44xx code) when the
        credentials are missing or refused."""
        container: Container = socket.app.state[CONTAINER_STATE_KEY]
        try:
            principal = await authenticate(socket, container)
            await enforce_rate_limits(container, principal, "reads")
        except (Unauthenticated, PermissionDenied, RateLimited) as err:
            await socket.accept()
            await socket.close(code=_REFUSALS[type(err)], reason=err.detail[:120])
            return None
        except Unavailable:
            await socket.accept()
            await socket.close(code=TRY_AGAIN_LATER, reason="try again later")
            return None
        await socket.accept()
        return cls(socket, container, principal)

    async def send(self, message: ServerMessage) -> bool:
        """Send one message; ``False`` when the connection is already gone."""
        async with self._send_lock:
            if self.closed:
                return False
            try:
                await self._socket.send_data(_ENCODER.encode(message).decode())
            except (WebSocketDisconnect, OSError, RuntimeError):
                self.closed = True
                return False
            self._last_sent = time.monotonic()
            return True

    async def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        async with self._send_lock:
            if self.closed:
                return
            self.closed = True
            with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
                await self._socket.close(code=code, reason=reason)

    async def receive_text(self) -> str | bytes | None:
        """The next client frame (text, or bytes for a binary frame); ``None`` when the
        client has gone."""
        try:
            event = await self._socket.receive()
        except WebSocketDisconnect:
            self.closed = True
            return None
        if event["type"] != "websocket.receive":
            self.closed = True
            return None
        text = event.get("text")
        if text is not None:
            return str(text)
        return bytes(event.get("bytes") or b"")

    @contextlib.asynccontextmanager
    async def heartbeats(self) -> AsyncIterator[None]:
        """While the block runs, send a heartbeat whenever the connection has been silent
        for ``ws_heartbeat_interval_s``, and check the credentials again at that interval:
        a connection outlives neither its token's expiry nor a revoked key or deactivated
        user (it closes with 4401)."""
        interval_s = self._container.settings.ws_heartbeat_interval_s
        tasks = [
            asyncio.create_task(self._beat(interval_s)),
            asyncio.create_task(self._recheck(interval_s)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _recheck(self, interval_s: float) -> None:
        while not self.closed:
            await asyncio.sleep(interval_s)
            try:
                await authenticate(self._socket, self._container)
            except (Unauthenticated, PermissionDenied) as err:
                await self.close(UNAUTHENTICATED, reason=err.detail[:120])
                return
            except Unavailable:  # the database is away for a moment: check again later
                continue

    async def _beat(self, interval_s: float) -> None:
        while not self.closed:
            await asyncio.sleep(max(0.0, self._last_sent + interval_s - time.monotonic()))
            if time.monotonic() - self._last_sent >= interval_s:
                await self.send(Heartbeat(timestamp=self._container.clock.now()))

    async def stream_job(
        self,
        job_id: Id,
        *,
        acknowledge: bool,
        on_final: Callable[[], Awaitable[None]] | None = None,
        on_refused: Callable[[int], Awaitable[None]] | None = None,
        on_bus_closed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Send the job's current state, then every change, until cancelled.

        The bus subscription is live before the state is read, so no change falls in between.
        ``on_final`` runs after a final state was sent; ``on_refused`` (with a close code)
        after an error message for a job that cannot be watched; ``on_bus_closed`` when the
        event bus ends (the server is stopping).
        """
        try:
            async with self._container.event_bus.subscription(job_channel(job_id)) as events:
                stream = await self._watcher.watch(self.principal, job_id)
                if acknowledge:
                    await self.send(Ack(action="subscribe", job_id=job_id))
                if await self._sent(stream.current) and on_final is not None:
                    await on_final()
                    return
                async for event in events:
                    if not isinstance(event, JobEvent):
                        continue
                    update = stream.accept(event)
                    if update is None:
                        continue
                    if await self._sent(update) and on_final is not None:
                        await on_final()
                        return
            if on_bus_closed is not None:
                await on_bus_closed()
        except (NotFound, PermissionDenied) as err:
            # The same words for an unknown job and for one of another centre.
            await self.send(ErrorMessage(job_id=str(job_id), detail=err.detail))
            if on_refused is not None:
                await on_refused(NOT_FOUND if isinstance(err, NotFound) else FORBIDDEN)
        except (Unavailable, RuntimeError) as err:
            # RuntimeError: the bus was closed under us (shutdown).
            log.warning("job stream unavailable", job_id=str(job_id), error=type(err).__name__)
            await self.send(
                ErrorMessage(job_id=str(job_id), detail="live updates are unavailable; retry")
            )
            if on_refused is not None:
                await on_refused(TRY_AGAIN_LATER)

    async def _sent(self, update: JobUpdate) -> bool:
        """Send ``update``; whether it was a final state."""
        await self.send(job_message(update))
        return update.final
