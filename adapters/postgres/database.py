"""The PostgreSQL database: an asyncpg pool, unit-of-work factory and health probe."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg
import msgspec

from adapters.postgres._dsn import describe_dsn
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from domain.errors import Unavailable
from domain.ports import EventBus

_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
_COUNTERS_POOL_SIZE = 4


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode("utf-8")


async def keep_session(connection: asyncpg.Connection) -> None:
    """What a released connection needs besides the rollback asyncpg always does: nothing.

    asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) is a round trip
    on every release, for session state this pool never makes: the event bus listens and
    migrations lock on connections of their own, and no statement sets session variables
    (``SET LOCAL`` ends with its transaction).
    """


async def _init_connection(connection: asyncpg.Connection) -> None:
    """Per-connection set-up: json and jsonb go through msgspec both ways, and uuids come
    back as the standard library's ``uuid.UUID`` (not asyncpg's subclass), so aggregates read
    from the database hold exactly the types the domain declares."""
    await connection.set_type_codec(
        "uuid", encoder=str, decoder=uuid.UUID, schema="pg_catalog", format="text"
    )
    for type_name in ("json", "jsonb"):
        await connection.set_type_codec(
            type_name,
            encoder=_encode_json,
            decoder=msgspec.json.decode,
            schema="pg_catalog",
            format="text",
        )


def _redact(message: str, dsn: str) -> str:
    """One line of error text, with the DSN's password (if any) masked."""
    try:
        password = urlsplit(dsn).password
    except ValueError:
        password = None
    if password:
        message = message.replace(password, "***").replace(unquote(password), "***")
    return " ".join(message.split())


def unavailable(dsn: str, err: BaseException, *, doing: str = "connect to") -> Unavailable:
    """A one-line ``Unavailable`` naming host, port and database, never the password."""
    reason = _redact(str(err) or type(err).__name__, dsn)
    return Unavailable(f"cannot {doing} PostgreSQL at {describe_dsn(dsn)}: {reason}")


class PostgresDatabase:
    """An asyncpg connection pool and the unit-of-work factory built on it.

    Nothing connects at construction: use ``await PostgresDatabase.connect(dsn)``.
    """

    def __init__(self, pool: asyncpg.Pool, *, dsn: str, event_bus: EventBus | None = None) -> None:
        self._pool = pool
        self._dsn = dsn
        self._event_bus = event_bus
        self._counters: asyncpg.Pool | None = None
        self._counters_lock = asyncio.Lock()

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout_s: float = 10.0,
        event_bus: EventBus | None = None,
    ) -> PostgresDatabase:
        """Open a pool to ``dsn``; raises ``Unavailable`` (one line, no password) on failure."""
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=connect_timeout_s,
                init=_init_connection,
                reset=keep_session,
                server_settings={"application_name": "hounsfield", "timezone": "UTC"},
            )
        except _CONNECT_ERRORS as err:
            raise unavailable(dsn, err) from err
        return cls(pool, dsn=dsn, event_bus=event_bus)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @property
    def event_bus(self) -> EventBus | None:
        return self._event_bus

    async def counters_pool(self) -> asyncpg.Pool:
        """A small pool whose statements commit without waiting for the WAL flush, for
        counters a crash may lose (rate limits): one round trip a statement, where
        ``SET LOCAL synchronous_commit`` needs a transaction around it (four)."""
        if self._counters is not None:  # every rate-limited request comes here
            return self._counters
        async with self._counters_lock:
            if self._counters is None:
                try:
                    self._counters = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=_COUNTERS_POOL_SIZE,
                        reset=keep_session,
                        server_settings={
                            "application_name": "hounsfield-counters",
                            "timezone": "UTC",
                            "synchronous_commit": "off",
                        },
                    )
                except _CONNECT_ERRORS as err:
                    raise unavailable(self._dsn, err) from err
            return self._counters

    def unit_of_work(self) -> PostgresUnitOfWork:
        """A fresh unit of work (this method is a ``UnitOfWorkFactory``)."""
        return PostgresUnitOfWork(self._pool, event_bus=self._event_bus)

    async def ping(self) -> str:
        """The server version, e.g. ``PostgreSQL 15.4``; raises ``Unavailable`` when unreachable."""
        try:
            async with self._pool.acquire() as connection:
                version = await connection.fetchval("SHOW server_version")
        except _CONNECT_ERRORS as err:
            raise unavailable(self._dsn, err, doing="reach") from err
        return f"PostgreSQL {str(version).split()[0]}"

    async def close(self) -> None:
        if self._counters is not None:
            await self._counters.close()
        await self._pool.close()


class PostgresHealthProbe:
    """``/health/detailed`` entry for the database: answers with the server version."""

    component = "database"

    def __init__(self, database: PostgresDatabase) -> None:
        self._database = database

    async def check(self) -> str | None:
        return await self._database.ping()
