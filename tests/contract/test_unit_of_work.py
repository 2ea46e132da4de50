"""Contract: a unit of work is one transaction; events are published only after commit."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from adapters.postgres.database import PostgresDatabase, PostgresHealthProbe
from adapters.postgres.session import is_plain_select
from adapters.postgres.unit_of_work import PostgresUnitOfWork
from domain.errors import Unavailable
from domain.events import DomainEvent, JobQueued, StudyUploaded
from domain.jobs import JobStatus
from domain.ports import UnitOfWorkFactory
from tests.contract.conftest import Make, RecordingEventBus, store


def uploaded(study_id: uuid.UUID) -> StudyUploaded:
    return StudyUploaded(at=datetime.now(UTC), centre_id=None, study_id=study_id, instance_count=1)


async def test_leaving_without_commit_keeps_nothing(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    study = make.study(centre)
    await store(uow_factory, centre)

    async with uow_factory() as uow:
        await uow.studies.add(study)
        assert await uow.studies.get(study.id) == study  # visible inside its own transaction

    async with uow_factory() as uow:
        assert await uow.studies.get(study.id) is None


async def test_an_error_inside_the_block_rolls_back_and_propagates(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()

    with pytest.raises(ZeroDivisionError):
        async with uow_factory() as uow:
            await uow.centres.add(centre)
            _ = 1 / 0

    async with uow_factory() as uow:
        assert await uow.centres.get(centre.id) is None


async def test_an_explicit_rollback_discards_the_changes_and_events(
    uow_factory: UnitOfWorkFactory, make: Make, event_bus: RecordingEventBus
):
    centre = make.centre()

    async with uow_factory() as uow:
        await uow.centres.add(centre)
        uow.collect(uploaded(centre.id))
        await uow.rollback()

    async with uow_factory() as uow:
        assert await uow.centres.get(centre.id) is None
    assert event_bus.published == []


async def test_committed_work_survives_and_its_events_are_published_in_order(
    uow_factory: UnitOfWorkFactory, make: Make, event_bus: RecordingEventBus
):
    centre = make.centre()
    study = make.study(centre)
    job = make.job(study)
    events: list[DomainEvent] = [
        uploaded(study.id),
        JobQueued(
            at=datetime.now(UTC), centre_id=centre.id, job_id=job.id, status=JobStatus.QUEUED
        ),
    ]

    async with uow_factory() as uow:
        await uow.centres.add(centre)
        await uow.studies.add(study)
        await uow.jobs.add(job)
        for event in events:
            uow.collect(event)
        assert event_bus.published == []  # nothing is announced before the commit
        await uow.commit()

    assert event_bus.published == events
    async with uow_factory() as uow:
        assert await uow.jobs.get(job.id) == job


async def test_events_of_a_rolled_back_unit_of_work_are_never_published(
    uow_factory: UnitOfWorkFactory, make: Make, event_bus: RecordingEventBus
):
    centre = make.centre()

    with pytest.raises(RuntimeError, match="boom"):
        async with uow_factory() as uow:
            await uow.centres.add(centre)
            uow.collect(uploaded(centre.id))
            raise RuntimeError("boom")

    async with uow_factory() as uow:
        uow.collect(uploaded(centre.id))

    assert event_bus.published == []


async def test_uncommitted_changes_are_invisible_to_other_units_of_work(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    added = asyncio.Event()
    seen: list[object] = []

    async def writer() -> None:
        async with uow_factory() as uow:
            await uow.centres.add(centre)
            added.set()
            await asyncio.sleep(0.05)
            # leaves without commit

    async def reader() -> None:
        await added.wait()
        async with uow_factory() as uow:
            seen.append(await uow.centres.get(centre.id))

    await asyncio.wait_for(asyncio.gather(writer(), reader()), timeout=10)

    assert seen == [None]


async def test_many_failing_units_of_work_do_not_exhaust_the_connections(
    uow_factory: UnitOfWorkFactory, make: Make
):
    async def fail_once() -> None:
        with pytest.raises(KeyError):
            async with uow_factory() as uow:
                await uow.centres.get(make.id())
                raise KeyError("x")

    async def run_all() -> None:
        for _ in range(30):
            await fail_once()

    await asyncio.wait_for(run_all(), timeout=30)
    centre = make.centre()
    await store(uow_factory, centre)
    async with uow_factory() as uow:
        assert await uow.centres.get(centre.id) == centre


# PostgreSQL-only behaviour of the adapter around the unit of work.


class FailingEventBus(RecordingEventBus):
    async def publish(self, event: DomainEvent) -> None:
        raise ConnectionRefusedError("bus is down")


@pytest.mark.postgres
async def test_a_failing_event_bus_does_not_undo_a_committed_change(
    postgres_database: PostgresDatabase, make: Make
):
    centre = make.centre()

    async with PostgresUnitOfWork(postgres_database.pool, event_bus=FailingEventBus()) as uow:
        await uow.centres.add(centre)
        uow.collect(uploaded(centre.id))
        await uow.commit()

    async with postgres_database.unit_of_work() as uow:
        assert await uow.centres.get(centre.id) == centre


@pytest.mark.postgres
async def test_a_unit_of_work_used_outside_its_block_says_so(postgres_database: PostgresDatabase):
    uow = postgres_database.unit_of_work()
    with pytest.raises(RuntimeError, match="async with"):
        await uow.commit()


@pytest.mark.postgres
async def test_reads_run_outside_a_transaction_until_the_first_write(
    postgres_database: PostgresDatabase, make: Make
):
    centre = make.centre()
    uow = postgres_database.unit_of_work()
    async with uow:
        connection = uow._active().connection
        assert await uow.centres.get(centre.id) is None
        assert not connection.is_in_transaction()  # no BEGIN/ROLLBACK for a read

        await uow.centres.add(centre)
        assert connection.is_in_transaction()
        assert await uow.centres.get(centre.id) == centre  # reads its own write, inside
        await uow.commit()
        assert not connection.is_in_transaction()  # the next one begins with its write

    async with postgres_database.unit_of_work() as uow:
        assert await uow.centres.get(centre.id) == centre


@pytest.mark.parametrize(
    ("statement", "plain"),
    [
        ("SELECT id FROM studies WHERE id = $1", True),
        ("  select count(*) FROM jobs", True),
        ("SELECT updated_at, deleted FROM things", True),
        ("SELECT id FROM jobs WHERE id = $1 FOR UPDATE", False),
        ("SELECT id FROM jobs FOR NO KEY UPDATE SKIP LOCKED", False),
        ("SELECT pg_notify($1, $2)", False),
        ("SELECT pg_advisory_xact_lock(1)", False),
        ("SELECT nextval('invoice_numbers')", False),
        ("WITH gone AS (DELETE FROM a RETURNING id) SELECT count(*) FROM gone", False),
        ("INSERT INTO a VALUES ($1)", False),
        ("UPDATE a SET b = 1", False),
    ],
)
def test_only_plain_selects_run_outside_the_transaction(statement: str, plain: bool):
    assert is_plain_select(statement) is plain


@pytest.mark.postgres
async def test_the_database_reports_its_server_version(postgres_database: PostgresDatabase):
    probe = PostgresHealthProbe(postgres_database)

    detail = await probe.check()

    assert probe.component == "database"
    assert detail is not None and detail.startswith("PostgreSQL ")
    assert detail == await postgres_database.ping()


async def test_an_unreachable_database_is_unavailable_with_one_line_and_no_password():
    dsn = "postgresql://hounsfield:s3cret-pw@127.0.0.1:1/clinic"

    with pytest.raises(Unavailable) as caught:
        await PostgresDatabase.connect(dsn, connect_timeout_s=2.0)

    message = str(caught.value)
    assert "127.0.0.1:1/clinic" in message
    assert "s3cret-pw" not in message
    assert "\n" not in message
    assert caught.value.__cause__ is not None
