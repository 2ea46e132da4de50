"""Rate-limit counters in PostgreSQL, so every API process counts against the same window."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from adapters.postgres.database import PostgresDatabase
from domain.ports.rate_limits import RateDecision
from domain.ports.services import Clock

# One upsert decides a hit: the row only grows while it is under the limit.
_HIT = """
INSERT INTO rate_limit_windows (key, window_start, hits) VALUES ($1, $2, 1)
ON CONFLICT (key, window_start)
DO UPDATE SET hits = rate_limit_windows.hits + 1 WHERE rate_limit_windows.hits < $3
RETURNING hits
"""
_PEEK = "SELECT hits FROM rate_limit_windows WHERE key = $1 AND window_start = $2"
_RESET = "DELETE FROM rate_limit_windows WHERE key = $1"
_PRUNE = "DELETE FROM rate_limit_windows WHERE window_start < $1"
_PRUNE_EVERY = 500
"""Roughly one hit in this many also removes windows that ended over an hour ago."""


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
        """One connection and one transaction for every key: a request's client and centre
        budgets cost one round trip each, not a transaction each."""
        start, retry_after = self._window(window_s)
        decisions: list[RateDecision] = []
        async with self._database.pool.acquire() as connection, connection.transaction():
            # A counter lost in a crash costs nothing; waiting for the WAL flush on every
            # request costs milliseconds.
            await connection.execute("SET LOCAL synchronous_commit TO OFF")
            for key, limit in budgets:
                hits = await connection.fetchval(_HIT, key, start, limit)
                if hits is None:
                    decisions.append(
                        RateDecision(allowed=False, remaining=0, retry_after_s=retry_after)
                    )
                    break
                decisions.append(
                    RateDecision(allowed=True, remaining=max(0, limit - hits), retry_after_s=0)
                )
            if random.randrange(_PRUNE_EVERY) == 0:
                await connection.execute(_PRUNE, start - timedelta(hours=1))
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
