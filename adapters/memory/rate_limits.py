"""An in-process fixed-window rate limiter (one process only; use PostgreSQL for several)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from domain.ports.rate_limits import RateDecision
from domain.ports.services import Clock


class MemoryRateLimiter:
    def __init__(self, *, clock: Clock) -> None:
        self._clock = clock
        self._windows: dict[str, tuple[int, int]] = {}

    def _window(self, key: str, window_s: int) -> tuple[int, int, int]:
        now = self._clock.now().timestamp()
        start = int(now // window_s) * window_s
        stored_start, count = self._windows.get(key, (start, 0))
        if stored_start != start:
            count = 0
        retry_after = max(1, math.ceil(start + window_s - now))
        return start, count, retry_after

    async def hit(self, key: str, *, limit: int, window_s: int) -> RateDecision:
        start, count, retry_after = self._window(key, window_s)
        if count >= limit:
            return RateDecision(allowed=False, remaining=0, retry_after_s=retry_after)
        self._windows[key] = (start, count + 1)
        return RateDecision(allowed=True, remaining=limit - count - 1, retry_after_s=0)

    async def hit_all(
        self, budgets: Sequence[tuple[str, int]], *, window_s: int
    ) -> list[RateDecision]:
        decisions: list[RateDecision] = []
        for key, limit in budgets:
            decisions.append(await self.hit(key, limit=limit, window_s=window_s))
            if not decisions[-1].allowed:
                break
        return decisions

    async def peek(self, key: str, *, limit: int, window_s: int) -> RateDecision:
        _, count, retry_after = self._window(key, window_s)
        if count >= limit:
            return RateDecision(allowed=False, remaining=0, retry_after_s=retry_after)
        return RateDecision(allowed=True, remaining=limit - count, retry_after_s=0)

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)
