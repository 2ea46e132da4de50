"""The connection as a unit of work's repositories see it: the transaction begins with the
first statement.

A unit of work used to begin its transaction on entry and begin the next one right after each
commit, so a plain write cost BEGIN, the work, COMMIT, then a BEGIN and a ROLLBACK that did
nothing: two round trips in five for an upload's audit record, say. Beginning lazily leaves
only the ones that carry work.
"""

from __future__ import annotations

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
        await self._begin()
        return await self.connection.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        await self._begin()
        return await self.connection.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        await self._begin()
        return await self.connection.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        await self._begin()
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

    async def _begin(self) -> None:
        if self._transaction is None:
            transaction = self.connection.transaction()
            await transaction.start()
            self._transaction = transaction
