"""The EventBus contract, run against the in-memory bus and the PostgreSQL LISTEN/NOTIFY bus.

Every wait is bounded by ``asyncio.timeout`` so that a broken bus fails the test quickly
instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from adapters.memory.events import MemoryEventBus
from adapters.postgres.events import EventTooLarge, PostgresEventBus
from domain.events import DomainEvent, JobProgressed, JobQueued, job_channel
from domain.jobs import JobStage, JobStatus

WAIT_S = 5.0
T0 = datetime(2026, 1, 5, 8, 0, 0, 123456, tzinfo=UTC)


def job_event(job_id: uuid.UUID, progress: float = 0.0, **changes: Any) -> JobProgressed:
    fields: dict[str, Any] = {
        "at": T0,
        "centre_id": uuid.uuid4(),
        "job_id": job_id,
        "status": JobStatus.RUNNING,
        "stage": JobStage.INFERENCE,
        "progress": progress,
        "message": "segmenting",
    }
    return JobProgressed(**(fields | changes))


class Subscriber:
    """Consumes one subscription in a task, recording what arrives."""

    def __init__(self, bus: Any, key: str) -> None:
        self.bus = bus
        self.key = key
        self.received: list[DomainEvent] = []
        self._arrived = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Subscriber:
        """Start consuming and return once the subscription is live."""
        before = self.bus.subscriber_count(self.key)
        self._task = asyncio.create_task(self._consume())
        async with asyncio.timeout(WAIT_S):
            while self.bus.subscriber_count(self.key) <= before:
                if self._task.done():
                    await self._task  # surfaces the subscription's error
                await asyncio.sleep(0.005)
        return self

    async def _consume(self) -> None:
        async for event in self.bus.subscribe(self.key):
            async with self._arrived:
                self.received.append(event)
                self._arrived.notify_all()

    async def wait_for(self, count: int) -> list[DomainEvent]:
        async with asyncio.timeout(WAIT_S), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return self.received

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def ended(self) -> bool:
        return self._task is not None and self._task.done()


def postgres_bus(dsn: str, channel: str) -> PostgresEventBus:
    return PostgresEventBus(
        dsn=dsn,
        channel=channel,
        connect_timeout_s=WAIT_S,
        reconnect_initial_s=0.05,
        reconnect_max_s=0.5,
        ping_interval_s=1.0,
    )


@pytest.fixture
def channel() -> str:
    """A NOTIFY channel of this test only, so tests cannot hear each other."""
    return f"test_events_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["memory", "postgres"])
def make_bus(request: pytest.FixtureRequest, channel: str) -> Callable[[], Any]:
    if request.param == "memory":
        return MemoryEventBus
    dsn = request.getfixturevalue("postgres_dsn")
    return lambda: postgres_bus(dsn, channel)


@pytest.fixture
async def bus(make_bus: Callable[[], Any]) -> AsyncIterator[Any]:
    bus = make_bus()
    try:
        yield bus
    finally:
        if isinstance(bus, PostgresEventBus):
            await bus.aclose()


async def until(predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds; fails after ``WAIT_S``."""
    async with asyncio.timeout(WAIT_S):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.005)


@pytest.fixture
async def subscribers() -> AsyncIterator[list[Subscriber]]:
    """Subscribers started by a test; stopped when it ends, whatever happened."""
    started: list[Subscriber] = []
    yield started
    for subscriber in started:
        await subscriber.stop()


async def subscribe(bus: Any, key: str, subscribers: list[Subscriber]) -> Subscriber:
    subscriber = await Subscriber(bus, key).start()
    subscribers.append(subscriber)
    return subscriber


async def test_subscriber_gets_the_events_of_its_key_in_order(
    bus: Any, subscribers: list[Subscriber]
) -> None:
    job_id = uuid.uuid4()
    subscriber = await subscribe(bus, job_channel(job_id), subscribers)
    events = [job_event(job_id, progress=step / 10) for step in range(10)]

    for event in events:
        await bus.publish(event)

    assert await subscriber.wait_for(10) == events


async def test_subscriber_does_not_get_events_of_other_keys(
    bus: Any, subscribers: list[Subscriber]
) -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    subscriber = await subscribe(bus, job_channel(mine), subscribers)

    await bus.publish(job_event(other, progress=0.5))
    await bus.publish(job_event(mine, progress=1.0))

    received = await subscriber.wait_for(1)
    await asyncio.sleep(0.05)
    assert [event.job_id for event in received] == [mine]  # type: ignore[attr-defined]


async def test_subscriber_does_not_get_events_published_before_it_subscribed(
    bus: Any, subscribers: list[Subscriber]
) -> None:
    job_id = uuid.uuid4()
    await bus.publish(job_event(job_id, progress=0.1))
    subscriber = await subscribe(bus, job_channel(job_id), subscribers)

    await bus.publish(job_event(job_id, progress=0.2))

    received = await subscriber.wait_for(1)
    await asyncio.sleep(0.05)
    assert [event.progress for event in received] == [0.2]  # type: ignore[attr-defined]


async def test_two_subscribers_of_one_key_both_get_the_events(
    bus: Any, subscribers: list[Subscriber]
) -> None:
    job_id = uuid.uuid4()
    first = await subscribe(bus, job_channel(job_id), subscribers)
    second = await subscribe(bus, job_channel(job_id), subscribers)
    events = [job_event(job_id, progress=0.25), job_event(job_id, progress=0.75)]

    for event in events:
        await bus.publish(event)

    assert await first.wait_for(2) == events
    assert await second.wait_for(2) == events


async def test_cancelling_a_consumer_unsubscribes_it(
    bus: Any, subscribers: list[Subscriber]
) -> None:
    job_id = uuid.uuid4()
    key = job_channel(job_id)
    subscriber = await subscribe(bus, key, subscribers)

    await subscriber.stop()
    await bus.publish(job_event(job_id))

    assert bus.subscriber_count(key) == 0
    assert subscriber.received == []


async def test_closing_the_iterator_unsubscribes(bus: Any) -> None:
    job_id = uuid.uuid4()
    key = job_channel(job_id)
    iterator = bus.subscribe(key)
    first = asyncio.ensure_future(anext(iterator))
    await until(lambda: bus.subscriber_count(key) == 1)
    await bus.publish(job_event(job_id, progress=0.5))
    async with asyncio.timeout(WAIT_S):
        assert (await first).progress == 0.5

    await iterator.aclose()
    await bus.publish(job_event(job_id, progress=0.6))
    await asyncio.sleep(0.05)

    assert bus.subscriber_count(key) == 0


async def test_a_job_event_round_trips_with_every_field_and_its_type(
    bus: Any, subscribers: list[Subscriber]
) -> None:
    job_id = uuid.uuid4()
    subscriber = await subscribe(bus, job_channel(job_id), subscribers)
    sent = job_event(job_id, progress=0.625, message="inference: slice 40 of 64 — ½ done")
    queued = JobQueued(at=T0, centre_id=None, job_id=job_id, status=JobStatus.QUEUED)

    await bus.publish(sent)
    await bus.publish(queued)

    received = await subscriber.wait_for(2)
    assert type(received[0]) is JobProgressed
    assert received[0] == sent
    assert received[0].at == T0
    assert type(received[1]) is JobQueued
    assert received[1] == queued


async def test_a_subscription_is_live_as_soon_as_it_is_entered(bus: Any) -> None:
    job_id = uuid.uuid4()
    async with bus.subscription(job_channel(job_id)) as events:
        event = job_event(job_id, progress=0.3)
        await bus.publish(event)
        async with asyncio.timeout(WAIT_S):
            assert await anext(events) == event

    assert bus.subscriber_count(job_channel(job_id)) == 0


async def test_events_of_a_large_message_arrive_whole(
    bus: Any, subscribers: list[Subscriber]
) -> None:
    job_id = uuid.uuid4()
    subscriber = await subscribe(bus, job_channel(job_id), subscribers)
    event = job_event(job_id, message="failed: " + "ünreadable slice; " * 1500)

    await bus.publish(event)

    assert await subscriber.wait_for(1) == [event]


async def test_closing_the_bus_ends_subscriptions_and_refuses_new_ones(
    make_bus: Callable[[], Any], subscribers: list[Subscriber]
) -> None:
    bus = make_bus()
    key = job_channel(uuid.uuid4())
    subscriber = await subscribe(bus, key, subscribers)

    await bus.aclose()

    await until(lambda: subscriber.ended)
    with pytest.raises(RuntimeError, match="closed"):
        async with bus.subscription(key):
            pass


# -- PostgreSQL only --------------------------------------------------------------------------


@pytest.mark.postgres
async def test_an_event_from_another_bus_instance_reaches_this_ones_subscribers(
    postgres_dsn: str, channel: str, subscribers: list[Subscriber]
) -> None:
    listening, publishing = postgres_bus(postgres_dsn, channel), postgres_bus(postgres_dsn, channel)
    try:
        job_id = uuid.uuid4()
        subscriber = await subscribe(listening, job_channel(job_id), subscribers)
        event = job_event(job_id, progress=0.5)

        await publishing.publish(event)

        assert await subscriber.wait_for(1) == [event]
    finally:
        await publishing.aclose()
        await listening.aclose()


@pytest.mark.postgres
async def test_a_bus_on_a_database_pool_delivers_events(
    postgres_database: Any, channel: str, subscribers: list[Subscriber]
) -> None:
    bus = PostgresEventBus(database=postgres_database, channel=channel, connect_timeout_s=WAIT_S)
    try:
        job_id = uuid.uuid4()
        subscriber = await subscribe(bus, job_channel(job_id), subscribers)
        event = job_event(job_id, progress=0.5)

        await bus.publish(event)

        assert await subscriber.wait_for(1) == [event]
    finally:
        await bus.aclose()


@pytest.mark.postgres
async def test_the_bus_survives_its_listening_connection_being_terminated(
    postgres_dsn: str, channel: str, subscribers: list[Subscriber]
) -> None:
    bus = postgres_bus(postgres_dsn, channel)
    try:
        job_id = uuid.uuid4()
        subscriber = await subscribe(bus, job_channel(job_id), subscribers)
        old_pid = bus.listener_pid
        assert old_pid is not None

        admin = await asyncpg.connect(postgres_dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        finally:
            await admin.close()
        await until(lambda: bus.listener_pid not in (None, old_pid))
        event = job_event(job_id, progress=0.9)
        await bus.publish(event)

        assert await subscriber.wait_for(1) == [event]
        assert not subscriber.ended
    finally:
        await bus.aclose()


@pytest.mark.postgres
async def test_closing_the_bus_ends_its_subscriptions(
    postgres_dsn: str, channel: str, subscribers: list[Subscriber]
) -> None:
    bus = postgres_bus(postgres_dsn, channel)
    key = job_channel(uuid.uuid4())
    subscriber = await subscribe(bus, key, subscribers)

    await bus.aclose()

    await until(lambda: subscriber.ended)
    assert bus.subscriber_count(key) == 0
    assert bus.listener_pid is None


@pytest.mark.postgres
async def test_an_event_larger_than_a_notify_payload_reaches_another_bus_whole(
    postgres_dsn: str, channel: str, subscribers: list[Subscriber]
) -> None:
    listening, publishing = postgres_bus(postgres_dsn, channel), postgres_bus(postgres_dsn, channel)
    try:
        job_id = uuid.uuid4()
        subscriber = await subscribe(listening, job_channel(job_id), subscribers)
        # Multi-byte characters across the chunk boundaries, well past the 8000-byte limit.
        long = job_event(job_id, progress=0.5, message="Läsion ½ — " * 3000)
        short = job_event(job_id, progress=0.6)

        await publishing.publish(long)
        await publishing.publish(short)

        assert await subscriber.wait_for(2) == [long, short]
    finally:
        await publishing.aclose()
        await listening.aclose()


@pytest.mark.postgres
async def test_an_event_beyond_the_configured_maximum_is_refused(
    postgres_dsn: str, channel: str
) -> None:
    bus = PostgresEventBus(dsn=postgres_dsn, channel=channel, max_event_bytes=20_000)
    try:
        event = job_event(uuid.uuid4(), message="x" * 20_000)
        with pytest.raises(EventTooLarge, match="at most 20000 bytes"):
            await bus.publish(event)
    finally:
        await bus.aclose()
