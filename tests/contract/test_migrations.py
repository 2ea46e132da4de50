"""The migrator: applies each shipped SQL file once, safely when several start together."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from adapters.postgres.migrate import MigrationChecksumMismatch, available_migrations, migrate
from domain.errors import Unavailable

pytestmark = pytest.mark.postgres

MakeDatabase = Callable[[], Awaitable[str]]


async def ledger(dsn: str) -> list[tuple[str, str]]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch("SELECT name, checksum FROM schema_migrations ORDER BY name")
    finally:
        await connection.close()
    return [(row["name"], row["checksum"]) for row in rows]


def test_the_shipped_migrations_are_found_in_name_order():
    names = [m.name for m in available_migrations()]

    assert names[0] == "0001_initial.sql"
    assert names == sorted(names)
    assert all(name.endswith(".sql") for name in names)


async def test_a_fresh_database_gets_every_migration_once(empty_postgres_database: MakeDatabase):
    dsn = await empty_postgres_database()

    applied = await migrate(dsn)
    again = await migrate(dsn)

    assert applied == [m.name for m in available_migrations()]
    assert again == []
    assert await ledger(dsn) == [(m.name, m.checksum) for m in available_migrations()]
    connection = await asyncpg.connect(dsn)
    try:
        tables = {
            row["tablename"]
            for row in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
    finally:
        await connection.close()
    assert {"centres", "studies", "jobs", "invoices", "invoice_sequences", "audit_events"} <= tables


async def test_migrators_started_together_apply_each_file_exactly_once(
    empty_postgres_database: MakeDatabase,
):
    dsn = await empty_postgres_database()

    outcomes = await asyncio.gather(*(migrate(dsn) for _ in range(4)))

    applied = [name for outcome in outcomes for name in outcome]
    assert sorted(applied) == [m.name for m in available_migrations()]
    assert len(await ledger(dsn)) == len(available_migrations())


async def test_an_edited_migration_is_refused(empty_postgres_database: MakeDatabase):
    dsn = await empty_postgres_database()
    await migrate(dsn)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE name = '0001_initial.sql'"
        )
    finally:
        await connection.close()

    with pytest.raises(MigrationChecksumMismatch, match=re.escape("0001_initial.sql")):
        await migrate(dsn)


async def test_migrating_an_unreachable_server_is_unavailable():
    with pytest.raises(Unavailable, match=re.escape("127.0.0.1:1/nowhere")):
        await migrate("postgresql://postgres:pw@127.0.0.1:1/nowhere")
