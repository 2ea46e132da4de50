"""The composition root wires the event bus the database calls for: LISTEN/NOTIFY on
PostgreSQL (so API and worker processes hear each other), in-process otherwise; and closes it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.memory import MemoryEventBus
from adapters.postgres.events import PostgresEventBus
from domain.events import JobProgressed, job_channel
from domain.jobs import JobStage, JobStatus
from entrypoints.bootstrap import bootstrap
from tests.api.conftest import settings_for

WAIT_S = 5.0


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)


def progressed(job_id: uuid.UUID, progress: float) -> JobProgressed:
    return JobProgressed(
        at=datetime.now(UTC),
        centre_id=uuid.uuid4(),
        job_id=job_id,
        status=JobStatus.RUNNING,
        stage=JobStage.INFERENCE,
        progress=progress,
    )


@pytest.mark.postgres
async def test_on_postgresql_events_cross_between_the_container_and_another_process_bus(
    tmp_path: Path, postgres_dsn: str
) -> None:
    container = await bootstrap(
        settings_for(tmp_path / "data", database_url=postgres_dsn), database="postgres"
    )
    # A second bus with its own connections stands for a worker process.
    worker_bus = PostgresEventBus(dsn=postgres_dsn)
    try:
        assert isinstance(container.event_bus, PostgresEventBus)
        job_id = uuid.uuid4()
        to_api, to_worker = progressed(job_id, 0.25), progressed(job_id, 0.5)

        async with (
            container.event_bus.subscription(job_channel(job_id)) as api_events,
            worker_bus.subscription(job_channel(job_id)) as worker_events,
        ):
            await worker_bus.publish(to_api)
            await container.event_bus.publish(to_worker)
            async with asyncio.timeout(WAIT_S):
                assert [await anext(api_events), await anext(api_events)] == [to_api, to_worker]
                assert [await anext(worker_events), await anext(worker_events)] == [
                    to_api,
                    to_worker,
                ]
    finally:
        await worker_bus.aclose()
        await container.aclose()


@pytest.mark.parametrize(
    "database", ["memory", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_closing_the_container_ends_event_subscriptions(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    env = {}
    if database == "postgres":
        env["database_url"] = request.getfixturevalue("postgres_dsn")
    container = await bootstrap(settings_for(tmp_path / "data", **env), database=database)  # type: ignore[arg-type]
    expected = PostgresEventBus if database == "postgres" else MemoryEventBus
    assert isinstance(container.event_bus, expected)
    bus = container.event_bus
    key = job_channel(uuid.uuid4())
    pending = asyncio.ensure_future(anext(bus.subscribe(key), None))
    await until(lambda: bus.subscriber_count(key) == 1)  # type: ignore[attr-defined]

    await container.aclose()

    async with asyncio.timeout(WAIT_S):
        assert await pending is None
