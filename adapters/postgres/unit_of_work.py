"""The PostgreSQL unit of work: one pooled connection, one transaction, events after commit."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import asyncpg
import structlog
from asyncpg.transaction import Transaction

from adapters.postgres.repositories import (
    PostgresAnalysisResultRepository,
    PostgresAnnotationRepository,
    PostgresApiKeyRepository,
    PostgresCentreRepository,
    PostgresInstanceRepository,
    PostgresInvoiceRepository,
    PostgresJobRepository,
    PostgresMeasurementRepository,
    PostgresPriceListRepository,
    PostgresReportRepository,
    PostgresSeriesRepository,
    PostgresStudyRepository,
    PostgresUserRepository,
)
from adapters.postgres.repositories.dicomweb import PostgresDicomQueryRepository
from domain.errors import Unavailable
from domain.events import DomainEvent
from domain.ports import (
    AnalysisResultRepository,
    AnnotationRepository,
    ApiKeyRepository,
    CentreRepository,
    EventBus,
    InstanceRepository,
    InvoiceRepository,
    JobRepository,
    MeasurementRepository,
    PriceListRepository,
    ReportRepository,
    SeriesRepository,
    StudyRepository,
    UserRepository,
)
from domain.ports.dicomweb import DicomQueryRepository

_log = structlog.get_logger(__name__)

# Errors that mean "the database went away", as opposed to a bad statement.
_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
)


class PostgresUnitOfWork:
    """An async context manager around one transaction on a pooled connection.

    Entering acquires a connection and begins a transaction; leaving rolls back whatever was
    not committed and returns the connection to the pool. ``commit()`` may be called more than
    once: work after a commit runs in a fresh transaction. Events passed to ``collect`` are
    published through the event bus, in order, only after the commit that covers them.
    """

    # Typed as the ports (attributes of a Protocol are invariant), bound in __aenter__.
    centres: CentreRepository
    users: UserRepository
    api_keys: ApiKeyRepository
    studies: StudyRepository
    series: SeriesRepository
    instances: InstanceRepository
    jobs: JobRepository
    results: AnalysisResultRepository
    reports: ReportRepository
    measurements: MeasurementRepository
    annotations: AnnotationRepository
    prices: PriceListRepository
    invoices: InvoiceRepository
    dicom: DicomQueryRepository

    def __init__(self, pool: asyncpg.Pool, *, event_bus: EventBus | None = None) -> None:
        self._pool = pool
        self._event_bus = event_bus
        self._connection: asyncpg.Connection | None = None
        self._transaction: Transaction | None = None
        self._events: list[DomainEvent] = []

    async def __aenter__(self) -> Self:
        if self._connection is not None:
            raise RuntimeError("this unit of work is already in use; make a new one per use")
        try:
            connection = await self._pool.acquire()
        except _CONNECTION_ERRORS as err:
            raise Unavailable(f"cannot reach PostgreSQL: {' '.join(str(err).split())}") from err
        try:
            self._transaction = await self._begin(connection)
        except BaseException:
            await self._pool.release(connection)
            raise
        self._connection = connection
        self._bind(connection)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, transaction = self._connection, self._transaction
        self._connection = self._transaction = None
        self._events.clear()
        try:
            if transaction is not None and connection is not None and not connection.is_closed():
                await transaction.rollback()
        finally:
            if connection is not None:
                await self._pool.release(connection)
        if isinstance(exc, _CONNECTION_ERRORS):
            raise Unavailable(
                f"lost the PostgreSQL connection: {' '.join(str(exc).split())}"
            ) from exc

    async def commit(self) -> None:
        connection, transaction = self._active()
        await transaction.commit()
        self._transaction = None
        events, self._events = self._events, []
        self._transaction = await self._begin(connection)
        await self._publish(events)

    async def rollback(self) -> None:
        connection, transaction = self._active()
        self._transaction = None
        self._events.clear()
        await transaction.rollback()
        self._transaction = await self._begin(connection)

    def collect(self, event: DomainEvent) -> None:
        self._events.append(event)

    @staticmethod
    async def _begin(connection: asyncpg.Connection) -> Transaction:
        transaction = connection.transaction()
        await transaction.start()
        return transaction

    def _active(self) -> tuple[asyncpg.Connection, Transaction]:
        if self._connection is None or self._transaction is None:
            raise RuntimeError("the unit of work is not active; use it as 'async with uow:'")
        return self._connection, self._transaction

    async def _publish(self, events: list[DomainEvent]) -> None:
        if self._event_bus is None:
            return
        for event in events:
            try:
                await self._event_bus.publish(event)
            except Exception:
                # The change is committed; a lost notification must not undo or fail it.
                _log.exception("event publish failed", event_type=type(event).__name__)

    def _bind(self, connection: asyncpg.Connection) -> None:
        self.centres = PostgresCentreRepository(connection)
        self.users = PostgresUserRepository(connection)
        self.api_keys = PostgresApiKeyRepository(connection)
        self.studies = PostgresStudyRepository(connection)
        self.series = PostgresSeriesRepository(connection)
        self.instances = PostgresInstanceRepository(connection)
        self.jobs = PostgresJobRepository(connection)
        self.results = PostgresAnalysisResultRepository(connection)
        self.reports = PostgresReportRepository(connection)
        self.measurements = PostgresMeasurementRepository(connection)
        self.annotations = PostgresAnnotationRepository(connection)
        self.prices = PostgresPriceListRepository(connection)
        self.invoices = PostgresInvoiceRepository(connection)
        self.dicom = PostgresDicomQueryRepository(connection)
