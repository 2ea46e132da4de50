"""The connection as a unit of work's repositories see it: the transaction begins with the
first statement that writes or locks.

A unit of work used to begin its transaction on entry and begin the next one right after each
commit, so a plain write cost BEGIN, the work, COMMIT, then a BEGIN and a ROLLBACK that did
nothing, and a unit of work that only reads (authenticating a request, say) cost a BEGIN and
a ROLLBACK around its SELECTs. Under READ COMMITTED (the isolation every transaction here
runs at) a plain SELECT sees the same thing inside a transaction or outside one, until the
transaction has written: each statement takes its own snapshot and takes no lock. So the
SELECTs before a unit of work's first write run on their own, and the transaction begins
with the first statement that is not a plain SELECT; from then on everything runs inside it.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import asyncpg
from asyncpg.transaction import Transaction


class Session:
    """One pooled connection and at most one open transaction on it."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self._transaction: Transaction | None = None

    @property
    def in_transaction(self) -> bool:
        return self._transaction is not None

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        await self._begin_unless_plain_select(query)
        return await self.connection.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        await self._begin_unless_plain_select(query)
        return await self.connection.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        await self._begin_unless_plain_select(query)
        return await self.connection.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        await self._begin_unless_plain_select(query)
        result: str = await self.connection.execute(query, *args)
        return result

    async def executemany(self, command: str, args: Any) -> None:
        await self._begin()
        await self.connection.executemany(command, args)

    async def commit(self) -> None:
        """Commit the open transaction, if a statement opened one."""
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            await transaction.commit()

    async def rollback(self) -> None:
        """Roll back the open transaction, if a statement opened one."""
        transaction, self._transaction = self._transaction, None
        if transaction is not None:
            await transaction.rollback()

    async def _begin_unless_plain_select(self, query: str) -> None:
        if self._transaction is None and not is_plain_select(query):
            await self._begin()

    async def _begin(self) -> None:
        if self._transaction is None:
            transaction = self.connection.transaction()
            await transaction.start()
            self._transaction = transaction


_SIDE_EFFECTS = re.compile(
    r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b"
    r"|\b(INSERT|UPDATE|DELETE|MERGE|nextval|setval|pg_notify|set_config|pg_advisory\w*)\b",
    re.IGNORECASE,
)


@functools.lru_cache(maxsize=1024)
def is_plain_select(query: str) -> bool:
    """A statement that only reads and locks nothing: it starts with SELECT and names no
    row lock, no data-changing command and no function with a side effect. Anything else
    (including a SELECT this cannot vouch for) counts as a write."""
    return query.lstrip()[:6].upper() == "SELECT" and _SIDE_EFFECTS.search(query) is None
