"""Rate-limit counters in PostgreSQL, so every API process counts against the same window."""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from adapters.postgres.database import PostgresDatabase
from domain.ports.rate_limits import RateDecision
from domain.ports.services import Clock

# One upsert decides a hit: the row only grows while it is under the limit.
_UPSERT = (
    "INSERT INTO rate_limit_windows (key, window_start, hits) {source} "
    "ON CONFLICT (key, window_start) "
    "DO UPDATE SET hits = rate_limit_windows.hits + 1 WHERE rate_limit_windows.hits < {limit} "
    "RETURNING hits"
)
_PEEK = "SELECT hits FROM rate_limit_windows WHERE key = $1 AND window_start = $2"
_RESET = "DELETE FROM rate_limit_windows WHERE key = $1"
_PRUNE = "DELETE FROM rate_limit_windows WHERE window_start < $1"
_PRUNE_EVERY = 500
"""Roughly one hit in this many also removes windows that ended over an hour ago."""


@functools.cache
def _hits_statement(budgets: int) -> str:
    """One statement for ``budgets`` keys, checked in order: a key is only counted when the
    ones before it were allowed (each upsert feeds the next through its RETURNING row), so a
    refused client does not use up its centre's budget. Parameters: the window start, then a
    key and its limit per budget; the row holds each hit count, NULL where refused or not
    reached."""
    steps = []
    for n in range(budgets):
        key, limit = f"${2 + 2 * n}", f"${3 + 2 * n}"
        source = (
            f"VALUES ({key}, $1, 1)"
            if n == 0
            else f"SELECT {key}, $1, 1 WHERE EXISTS (SELECT 1 FROM hit{n - 1})"
        )
        steps.append(f"hit{n} AS ({_UPSERT.format(source=source, limit=limit)})")
    counts = ", ".join(f"(SELECT hits FROM hit{n})" for n in range(budgets))
    return f"WITH {', '.join(steps)} SELECT {counts}"


class PostgresRateLimiter:
    def __init__(self, database: PostgresDatabase, *, clock: Clock) -> None:
        self._database = database
        self._clock = clock

    def _window(self, window_s: int) -> tuple[datetime, int]:
        now = self._clock.now().timestamp()
        start = math.floor(now / window_s) * window_s
        retry_after = max(1, math.ceil(start + window_s - now))
        return datetime.fromtimestamp(start, UTC), retry_after

    async def hit(self, key: str, *, limit: int, window_s: int) -> RateDecision:
        return (await self.hit_all([(key, limit)], window_s=window_s))[0]

    async def hit_all(
        self, budgets: Sequence[tuple[str, int]], *, window_s: int
    ) -> list[RateDecision]:
        """One statement for every key, committed without waiting for the WAL flush (a
        counter lost in a crash costs nothing; the wait costs every request a millisecond):
        a request's client and centre budgets cost one round trip together."""
        if len({key for key, _ in budgets}) != len(budgets):
            # one statement cannot count the same row twice: a key named twice is hit twice
            decisions: list[RateDecision] = []
            for budget in budgets:
                decisions += await self.hit_all([budget], window_s=window_s)
                if not decisions[-1].allowed:
                    break
            return decisions
        if not budgets:
            return []
        start, retry_after = self._window(window_s)
        arguments: list[object] = [start]
        for key, limit in budgets:
            arguments += [key, limit]
        pool = await self._database.counters_pool()
        async with pool.acquire() as connection:
            row = await connection.fetchrow(_hits_statement(len(budgets)), *arguments)
            if random.randrange(_PRUNE_EVERY) == 0:
                await connection.execute(_PRUNE, start - timedelta(hours=1))
        decisions = []
        for (_, limit), hits in zip(budgets, row.values(), strict=True):
            if hits is None:
                decisions.append(
                    RateDecision(allowed=False, remaining=0, retry_after_s=retry_after)
                )
                break
            decisions.append(
                RateDecision(allowed=True, remaining=max(0, limit - hits), retry_after_s=0)
            )
        return decisions

    async def peek(self, key: str, *, limit: int, window_s: int) -> RateDecision:
        start, retry_after = self._window(window_s)
        async with self._database.pool.acquire() as connection:
            hits = await connection.fetchval(_PEEK, key, start) or 0
        if hits >= limit:
            return RateDecision(allowed=False, remaining=0, retry_after_s=retry_after)
        return RateDecision(allowed=True, remaining=limit - hits, retry_after_s=0)

    async def reset(self, key: str) -> None:
        async with self._database.pool.acquire() as connection:
            await connection.execute(_RESET, key)
