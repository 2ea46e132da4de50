"""The event bus on PostgreSQL LISTEN/NOTIFY: works across processes on every machine that
reaches the database.

``publish`` sends the msgspec-JSON form of an event with ``pg_notify`` on one channel; every bus
listening on that channel (in this process or another) decodes it and hands it to its local
subscribers of the event's key.

Delivery is best effort, like NOTIFY itself. While the listening connection is down (it is
re-opened with exponential backoff) events published by others are lost for this bus: a
subscriber that must not miss a change re-reads the state from the database, which stays the
source of truth.

NOTIFY payloads must be shorter than 8000 bytes. A larger event (a worker's long message, a
failure with a long error text) is sent as numbered chunks by one ``pg_notify`` statement, so
in one transaction: they are committed together and every listener reassembles them. Events
encoding to more than ``max_event_bytes`` are refused with ``EventTooLarge``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg
import msgspec
import structlog

from adapters.postgres.database import PostgresDatabase, keep_session, unavailable
from domain.errors import Unavailable
from domain.events import AnyEvent, DomainEvent

_log = structlog.get_logger(__name__)

NOTIFY_PAYLOAD_LIMIT_BYTES: Final = 8000
"""PostgreSQL refuses NOTIFY payloads of this many bytes or more (default build)."""

CHUNK_MARK: Final = "~"
"""First character of a chunk's payload (a whole event is a JSON object and starts with '{')."""
_CHUNK_DATA_BYTES: Final = NOTIFY_PAYLOAD_LIMIT_BYTES - 200
"""Room for the chunk header (mark, message id, index, count) below the NOTIFY limit."""
_PARTIAL_TTL_S: Final = 60.0
"""A partly received chunked event is dropped after this long (its sender failed)."""
_MAX_PARTIALS: Final = 1000

_CONNECTION_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_CLOSED: Final = object()
"""Put in a subscriber's queue when the bus closes: the subscription ends."""


class EventTooLarge(ValueError):
    """An event whose encoded form is larger than the bus accepts (``max_event_bytes``)."""


class PostgresEventBus:
    """An ``EventBus`` over LISTEN/NOTIFY on one channel.

    Give either ``dsn`` (the bus opens its own connections) or ``database`` (it publishes through
    the pool and borrows one pooled connection for listening). Nothing connects at construction:
    the listening connection opens on the first ``subscribe`` and is shared by all subscribers
    of this bus, each of which gets its own unbounded queue. ``aclose()`` stops listening and
    ends every subscription.

    Args:
        dsn: ``postgresql://`` URL of the database.
        database: a connected ``PostgresDatabase`` to use instead of ``dsn``.
        channel: the NOTIFY channel, shared by every process of one deployment.
        connect_timeout_s: how long ``subscribe`` waits for the listening connection.
        reconnect_initial_s: first wait before re-opening a lost listening connection.
        reconnect_max_s: the longest wait between reconnection attempts.
        ping_interval_s: how often an idle listening connection is probed, so that a dead
            network path is noticed even when the server cannot say goodbye.
        max_event_bytes: the largest encoded event ``publish`` accepts; events of 8000 bytes
            or more travel in chunks.
    """

    def __init__(
        self,
        *,
        dsn: str | None = None,
        database: PostgresDatabase | None = None,
        channel: str = "hounsfield_events",
        connect_timeout_s: float = 10.0,
        reconnect_initial_s: float = 0.1,
        reconnect_max_s: float = 5.0,
        ping_interval_s: float = 30.0,
        max_event_bytes: int = 1_000_000,
    ) -> None:
        if (dsn is None) == (database is None):
            raise ValueError("PostgresEventBus needs exactly one of dsn= or database=")
        if not channel or len(channel.encode()) > 63:
            raise ValueError(f"channel must be 1 to 63 bytes, got {channel!r}")
        self._dsn = dsn
        self._database = database
        self._channel = channel
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_initial_s = reconnect_initial_s
        self._reconnect_max_s = reconnect_max_s
        self._ping_interval_s = ping_interval_s
        self._max_event_bytes = max_event_bytes
        # message id -> (first seen, monotonic s; chunk count; chunks received by index)
        self._partials: dict[str, tuple[float, int, dict[int, str]]] = {}
        self._subscribers: dict[str, set[asyncio.Queue[Any]]] = defaultdict(set)
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        self._listener: asyncpg.Connection | None = None
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def channel(self) -> str:
        return self._channel

    @property
    def listener_pid(self) -> int | None:
        """Backend process id of the listening connection while it is up, else ``None``."""
        if self._listener is None or not self._listening.is_set():
            return None
        return int(self._listener.get_server_pid())

    def subscriber_count(self, key: str) -> int:
        """Subscriptions of ``key`` that are receiving events now."""
        return len(self._subscribers.get(key, ()))

    async def publish(self, event: DomainEvent) -> None:
        """Notify every bus on the channel; raises ``EventTooLarge`` or ``Unavailable``."""
        if self._closed:
            raise RuntimeError("PostgresEventBus is closed")
        payload = msgspec.json.encode(event)
        if len(payload) > self._max_event_bytes:
            raise EventTooLarge(
                f"{type(event).__name__} encodes to {len(payload)} bytes; this bus accepts "
                f"events of at most {self._max_event_bytes} bytes"
            )
        pool = await self._publishing_pool()
        try:
            if len(payload) < NOTIFY_PAYLOAD_LIMIT_BYTES:
                await pool.execute("SELECT pg_notify($1, $2)", self._channel, payload.decode())
            else:
                # One statement is one transaction: the chunks are committed together.
                await pool.execute(
                    "SELECT pg_notify($1, chunk) FROM unnest($2::text[]) AS chunk",
                    self._channel,
                    _chunks(payload),
                )
        except _CONNECTION_ERRORS as err:
            raise self._unavailable(err, doing="publish an event to") from err

    async def subscribe(self, key: str) -> AsyncIterator[DomainEvent]:
        """Events on ``key`` published once the subscription is live, until it is closed.

        Raises ``Unavailable`` if the listening connection is not up within
        ``connect_timeout_s``. Ends (without error) when the bus is closed.
        """
        if self._closed:
            return
        async with self.subscription(key) as events:
            async for event in events:
                yield event

    @asynccontextmanager
    async def subscription(self, key: str) -> AsyncIterator[AsyncIterator[DomainEvent]]:
        """Like :meth:`subscribe`, but live as soon as the ``async with`` is entered: every
        event published after that reaches the iterator it gives."""
        if self._closed:
            raise RuntimeError("PostgresEventBus is closed")
        await self._wait_listening()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._subscribers[key].add(queue)
        try:
            yield _drain(queue)
        finally:
            subscribers = self._subscribers.get(key)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[key]

    async def aclose(self) -> None:
        """Stop listening, end every subscription and close the bus's own connections."""
        if self._closed:
            return
        self._closed = True
        for queues in self._subscribers.values():
            for queue in queues:
                queue.put_nowait(_CLOSED)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        _log.info("event bus closed", channel=self._channel)

    # -- publishing ---------------------------------------------------------------------------

    async def _publishing_pool(self) -> asyncpg.Pool:
        if self._database is not None:
            return self._database.pool
        async with self._pool_lock:
            if self._pool is None:
                assert self._dsn is not None
                try:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=2,
                        timeout=self._connect_timeout_s,
                        server_settings={"application_name": "hounsfield-events"},
                        # publishing sets no session state: nothing to reset on release
                        reset=keep_session,
                    )
                except _CONNECTION_ERRORS as err:
                    raise self._unavailable(err) from err
            return self._pool

    # -- listening ----------------------------------------------------------------------------

    async def _wait_listening(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen_forever(), name="postgres-event-bus")
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await self._listening.wait()
        except TimeoutError as err:
            raise Unavailable(
                f"event bus not listening on PostgreSQL after {self._connect_timeout_s} s"
            ) from err

    async def _listen_forever(self) -> None:
        """Keep one listening connection open, re-opening it with backoff when it drops."""
        delay_s = self._reconnect_initial_s
        attempts = 0
        while not self._closed:
            try:
                connection, release = await self._open_listener()
            except Exception as err:  # the supervisor must outlive any failure
                attempts += 1
                wait_s = delay_s * random.uniform(0.5, 1.0)
                _log.warning(
                    "event bus cannot listen, retrying",
                    channel=self._channel,
                    attempt=attempts,
                    retry_in_s=round(wait_s, 3),
                    error=type(err).__name__,
                )
                await asyncio.sleep(wait_s)
                delay_s = min(delay_s * 2, self._reconnect_max_s)
                continue
            delay_s = self._reconnect_initial_s
            _log.info(
                "event bus listening",
                channel=self._channel,
                backend_pid=connection.get_server_pid(),
                after_attempts=attempts,
            )
            attempts = 0
            try:
                await self._watch(connection)
            finally:
                self._listening.clear()
                self._listener = None
                await release(connection)
            if not self._closed:
                _log.warning(
                    "event bus lost its listening connection; events until it is back are lost",
                    channel=self._channel,
                )

    async def _open_listener(self) -> tuple[asyncpg.Connection, Any]:
        """A connection with LISTEN active, and the coroutine function that gives it up."""
        if self._database is not None:
            pool = self._database.pool
            connection = await pool.acquire(timeout=self._connect_timeout_s)

            async def release(conn: asyncpg.Connection) -> None:
                with contextlib.suppress(*_CONNECTION_ERRORS):
                    await conn.remove_listener(self._channel, self._on_notify)
                # remove_listener UNLISTENs the channel, so the pool gets a clean connection.
                await pool.release(conn)

        else:
            assert self._dsn is not None
            connection = await asyncpg.connect(
                self._dsn,
                timeout=self._connect_timeout_s,
                server_settings={"application_name": "hounsfield-events"},
            )

            async def release(conn: asyncpg.Connection) -> None:
                if conn.is_closed():
                    return
                try:
                    await asyncio.wait_for(conn.close(), timeout=self._connect_timeout_s)
                except (*_CONNECTION_ERRORS, asyncio.CancelledError):
                    conn.terminate()

        try:
            await connection.add_listener(self._channel, self._on_notify)
        except BaseException:
            await release(connection)
            raise
        return connection, release

    async def _watch(self, connection: asyncpg.Connection) -> None:
        """Return when ``connection`` is lost (closed by the server or failing a ping)."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        self._listener = connection
        self._listening.set()
        while not lost.is_set() and not connection.is_closed():
            try:
                async with asyncio.timeout(self._ping_interval_s):
                    await lost.wait()
            except TimeoutError:
                try:
                    await connection.fetchval("SELECT 1", timeout=self._connect_timeout_s)
                except Exception:  # any failure of the probe means the connection is gone
                    return

    def _on_notify(
        self, _connection: object, _pid: int, _channel: str, payload: str | bytes
    ) -> None:
        text = payload.decode() if isinstance(payload, bytes) else payload
        if text.startswith(CHUNK_MARK):
            whole = self._reassemble(text)
            if whole is None:
                return
            text = whole
        try:
            event = msgspec.json.decode(text, type=AnyEvent)
        except msgspec.DecodeError as err:
            # Never log the payload itself.
            _log.warning(
                "event bus dropped an undecodable notification",
                channel=self._channel,
                size_bytes=len(text),
                error=type(err).__name__,
            )
            return
        for queue in list(self._subscribers.get(event.key, ())):
            queue.put_nowait(event)

    def _reassemble(self, chunk: str) -> str | None:
        """Keep one chunk; the whole payload once its last chunk has arrived."""
        now = time.monotonic()
        for message_id, (seen, _, _) in list(self._partials.items()):
            if now - seen > _PARTIAL_TTL_S:
                del self._partials[message_id]
        try:
            message_id, index_text, count_text, data = chunk[1:].split(":", 3)
            index, count = int(index_text), int(count_text)
        except ValueError:
            _log.warning("event bus dropped a malformed chunk", channel=self._channel)
            return None
        if message_id not in self._partials:
            if len(self._partials) >= _MAX_PARTIALS:
                _log.warning("event bus dropped a chunk: too many partial events")
                return None
            self._partials[message_id] = (now, count, {})
        _, count, parts = self._partials[message_id]
        parts[index] = data
        if len(parts) < count:
            return None
        del self._partials[message_id]
        return "".join(parts[i] for i in range(count))

    def _unavailable(self, err: BaseException, *, doing: str = "connect to") -> Unavailable:
        if self._dsn is not None:
            return unavailable(self._dsn, err, doing=doing)
        return Unavailable(f"cannot {doing} PostgreSQL: {type(err).__name__}")


async def _drain(queue: asyncio.Queue[Any]) -> AsyncIterator[DomainEvent]:
    while True:
        item = await queue.get()
        if item is _CLOSED:
            return
        yield item


def _chunks(payload: bytes) -> list[str]:
    """``payload`` (UTF-8) cut at character boundaries into NOTIFY-sized, numbered chunks:
    ``~<message id>:<index>:<count>:<data>``."""
    pieces: list[str] = []
    start = 0
    while start < len(payload):
        end = min(start + _CHUNK_DATA_BYTES, len(payload))
        while end < len(payload) and payload[end] & 0xC0 == 0x80:
            end -= 1  # never cut inside a multi-byte character
        pieces.append(payload[start:end].decode())
        start = end
    message_id = uuid.uuid4().hex
    return [
        f"{CHUNK_MARK}{message_id}:{index}:{len(pieces)}:{piece}"
        for index, piece in enumerate(pieces)
    ]
