"""Contract: a fixed-window limiter admits ``limit`` hits per window and says when to retry."""

from __future__ import annotations

import asyncio

import pytest

from adapters.memory.clock import ManualClock
from adapters.memory.rate_limits import MemoryRateLimiter
from domain.ports.rate_limits import RateLimiter


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", "postgres"])
def limiter(request: pytest.FixtureRequest, clock: ManualClock) -> RateLimiter:
    if request.param == "memory":
        return MemoryRateLimiter(clock=clock)
    from adapters.postgres.rate_limits import PostgresRateLimiter

    return PostgresRateLimiter(request.getfixturevalue("postgres_database"), clock=clock)


async def test_hits_up_to_the_limit_are_allowed_and_the_next_is_refused(limiter, clock):
    decisions = [await limiter.hit("uploads:centre-a", limit=3, window_s=60) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert 1 <= refused.retry_after_s <= 60


async def test_a_new_window_starts_afresh(limiter, clock):
    for _ in range(2):
        await limiter.hit("k", limit=2, window_s=60)
    assert not (await limiter.hit("k", limit=2, window_s=60)).allowed
    clock.advance(seconds=60)
    assert (await limiter.hit("k", limit=2, window_s=60)).allowed


async def test_keys_are_counted_apart(limiter):
    assert (await limiter.hit("a", limit=1, window_s=60)).allowed
    assert (await limiter.hit("b", limit=1, window_s=60)).allowed
    assert not (await limiter.hit("a", limit=1, window_s=60)).allowed


async def test_peek_counts_nothing_and_reset_forgets(limiter):
    for _ in range(3):
        assert (await limiter.peek("p", limit=1, window_s=60)).allowed
    await limiter.hit("p", limit=1, window_s=60)
    assert not (await limiter.peek("p", limit=1, window_s=60)).allowed
    await limiter.reset("p")
    assert (await limiter.peek("p", limit=1, window_s=60)).allowed


async def test_concurrent_hits_never_admit_more_than_the_limit(limiter):
    decisions = await asyncio.gather(
        *(limiter.hit("burst", limit=10, window_s=60) for _ in range(40))
    )
    assert sum(d.allowed for d in decisions) == 10


async def test_hitting_several_budgets_at_once_counts_each_until_the_first_refusal(limiter):
    await limiter.hit("centre", limit=2, window_s=60)

    first = await limiter.hit_all([("client", 5), ("centre", 2)], window_s=60)
    refused = await limiter.hit_all([("client", 5), ("centre", 2), ("other", 5)], window_s=60)

    assert [(d.allowed, d.remaining) for d in first] == [(True, 4), (True, 0)]
    assert [d.allowed for d in refused] == [True, False]
    assert refused[1].retry_after_s > 0
    assert (await limiter.peek("client", limit=5, window_s=60)).remaining == 3
    assert (await limiter.peek("other", limit=5, window_s=60)).remaining == 5
    assert await limiter.hit_all([], window_s=60) == []
