"""The PostgreSQL unit of work: one pooled connection, one transaction, events after commit."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import asyncpg
import structlog

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
from adapters.postgres.session import Session
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

    Entering acquires a connection; the first statement begins a transaction; leaving rolls
    back whatever was not committed and returns the connection to the pool. ``commit()`` may
    be called more than once: work after a commit runs in a fresh transaction. Events passed
    to ``collect`` are published through the event bus, in order, only after the commit that
    covers them.
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
        self._session: Session | None = None
        self._events: list[DomainEvent] = []

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("this unit of work is already in use; make a new one per use")
        try:
            connection = await self._pool.acquire()
        except _CONNECTION_ERRORS as err:
            raise Unavailable(f"cannot reach PostgreSQL: {' '.join(str(err).split())}") from err
        # the transaction begins with the first statement (adapters.postgres.session)
        self._session = Session(connection)
        self._bind(self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        self._events.clear()
        if session is None:
            return
        try:
            if session.in_transaction and not session.connection.is_closed():
                await session.rollback()
        finally:
            await self._pool.release(session.connection)
        if isinstance(exc, _CONNECTION_ERRORS):
            raise Unavailable(
                f"lost the PostgreSQL connection: {' '.join(str(exc).split())}"
            ) from exc

    async def commit(self) -> None:
        await self._active().commit()
        events, self._events = self._events, []
        await self._publish(events)

    async def rollback(self) -> None:
        session = self._active()
        self._events.clear()
        await session.rollback()

    def collect(self, event: DomainEvent) -> None:
        self._events.append(event)

    def _active(self) -> Session:
        if self._session is None:
            raise RuntimeError("the unit of work is not active; use it as 'async with uow:'")
        return self._session

    async def _publish(self, events: list[DomainEvent]) -> None:
        if self._event_bus is None:
            return
        for event in events:
            try:
                await self._event_bus.publish(event)
            except Exception:
                # The change is committed; a lost notification must not undo or fail it.
                _log.exception("event publish failed", event_type=type(event).__name__)

    def _bind(self, connection: Session) -> None:
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
