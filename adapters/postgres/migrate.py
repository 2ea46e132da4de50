"""Apply the SQL migrations shipped in ``adapters/postgres/migrations`` in name order.

Each file runs in its own transaction and is recorded in ``schema_migrations`` with a checksum.
A session-level advisory lock serialises concurrent starters (several API processes or workers
booting at once): the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from importlib.resources.abc import Traversable

import asyncpg
import structlog

from adapters.postgres._dsn import describe_dsn
from domain.errors import Unavailable

_log = structlog.get_logger(__name__)

MIGRATIONS_PACKAGE = "adapters.postgres"
MIGRATIONS_DIR = "migrations"
ADVISORY_LOCK_KEY = 0x486F756E7366  # "Hounsf": one lock id for every Hounsfield migrator

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum   text NOT NULL
)
"""


class MigrationChecksumMismatch(RuntimeError):
    """An applied migration file was edited afterwards; the schema may not match the code."""


class Migration:
    """One ``.sql`` file: its name, text and SHA-256 checksum."""

    def __init__(self, name: str, sql: str) -> None:
        self.name = name
        self.sql = sql
        self.checksum = hashlib.sha256(sql.encode("utf-8")).hexdigest()


def available_migrations() -> list[Migration]:
    """The migrations shipped with the package, in name order (works from an installed wheel)."""
    folder: Traversable = resources.files(MIGRATIONS_PACKAGE) / MIGRATIONS_DIR
    files = [entry for entry in folder.iterdir() if entry.name.endswith(".sql") and entry.is_file()]
    return [Migration(f.name, f.read_text(encoding="utf-8")) for f in sorted(files, key=_name)]


def _name(entry: Traversable) -> str:
    return entry.name


async def migrate(dsn: str) -> list[str]:
    """Apply every migration not yet applied to the database at ``dsn``.

    Returns the names applied by this call (empty when the schema was up to date). Raises
    ``MigrationChecksumMismatch`` when an applied file has changed since, and ``Unavailable``
    when the database cannot be reached.
    """
    migrations = available_migrations()
    try:
        connection = await asyncpg.connect(dsn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
        raise Unavailable(f"cannot migrate PostgreSQL at {describe_dsn(dsn)}: {err}") from err
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
        try:
            return await _apply(connection, migrations)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)
    finally:
        await connection.close()


async def _apply(connection: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await connection.execute(_CREATE_LEDGER)
    rows = await connection.fetch("SELECT name, checksum FROM schema_migrations")
    applied = {row["name"]: row["checksum"] for row in rows}
    for migration in migrations:
        recorded = applied.get(migration.name)
        if recorded is not None and recorded != migration.checksum:
            raise MigrationChecksumMismatch(
                f"migration {migration.name} was changed after it was applied "
                f"(recorded checksum {recorded[:12]}, file {migration.checksum[:12]}); "
                "add a new migration instead of editing an applied one"
            )
    done: list[str] = []
    for migration in migrations:
        if migration.name in applied:
            continue
        async with connection.transaction():
            await connection.execute(migration.sql)
            await connection.execute(
                "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                migration.name,
                migration.checksum,
            )
        _log.info("migration applied", migration=migration.name)
        done.append(migration.name)
    return done
