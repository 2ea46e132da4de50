"""A shared counter of recent hits per key, so limits hold across API processes."""

from __future__ import annotations

from typing import Protocol

import msgspec


class RateDecision(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    remaining: int
    retry_after_s: int
    """Seconds until the window resets; 0 when allowed."""


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, window_s: int) -> RateDecision:
        """Count one hit on ``key`` in the current fixed window of ``window_s`` seconds.

        A hit over the limit is not counted and is answered ``allowed=False``.
        """

    async def reset(self, key: str) -> None:
        """Forget the hits of ``key`` (e.g. after a successful sign-in)."""

    async def peek(self, key: str, *, limit: int, window_s: int) -> RateDecision:
        """The decision a hit would get now, without counting one."""
