"""A shared counter of recent hits per key, so limits hold across API processes."""

from __future__ import annotations

from collections.abc import Sequence
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

    async def hit_all(
        self, budgets: Sequence[tuple[str, int]], *, window_s: int
    ) -> list[RateDecision]:
        """``hit`` on each ``(key, limit)`` in order, as one operation (one transaction on a
        database): the decisions of the keys hit, up to and including the first refused
        one; the keys after a refusal are not counted."""

    async def reset(self, key: str) -> None:
        """Forget the hits of ``key`` (e.g. after a successful sign-in)."""

    async def peek(self, key: str, *, limit: int, window_s: int) -> RateDecision:
        """The decision a hit would get now, without counting one."""
