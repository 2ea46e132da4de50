"""In-memory database and unit of work, for the domain's tests and for embedding.

Transactions are serialised by one lock (the isolation of SERIALIZABLE, trivially); a
unit of work snapshots the tables on entry and puts the snapshot back unless it commits.
Do not open a second unit of work inside one in the same task: it would wait forever.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Self

from adapters.memory.dicomweb import MemoryDicomQueryRepository
from adapters.memory.repositories import (
    MemoryAnalysisResultRepository,
    MemoryAnnotationRepository,
    MemoryApiKeyRepository,
    MemoryCentreRepository,
    MemoryInstanceRepository,
    MemoryInvoiceRepository,
    MemoryJobRepository,
    MemoryMeasurementRepository,
    MemoryPriceListRepository,
    MemoryReportRepository,
    MemorySeriesRepository,
    MemoryStudyRepository,
    MemoryUserRepository,
)
from adapters.memory.state import Tables
from domain.events import DomainEvent
from domain.ports.messaging import EventBus


class MemoryDatabase:
    def __init__(self, *, event_bus: EventBus | None = None) -> None:
        self.tables = Tables()
        self.event_bus = event_bus
        self._lock = asyncio.Lock()

    def unit_of_work(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self)

    async def ping(self) -> str:
        return "in-memory"


class MemoryUnitOfWork:
    def __init__(self, database: MemoryDatabase) -> None:
        self._database = database
        tables = database.tables
        self.centres = MemoryCentreRepository(tables)
        self.users = MemoryUserRepository(tables)
        self.api_keys = MemoryApiKeyRepository(tables)
        self.studies = MemoryStudyRepository(tables)
        self.series = MemorySeriesRepository(tables)
        self.instances = MemoryInstanceRepository(tables)
        self.jobs = MemoryJobRepository(tables)
        self.results = MemoryAnalysisResultRepository(tables)
        self.reports = MemoryReportRepository(tables)
        self.measurements = MemoryMeasurementRepository(tables)
        self.annotations = MemoryAnnotationRepository(tables)
        self.prices = MemoryPriceListRepository(tables)
        self.invoices = MemoryInvoiceRepository(tables)
        self.dicom = MemoryDicomQueryRepository(tables)
        self._committed_state: dict[str, dict[Any, Any]] | None = None
        self._pending: list[DomainEvent] = []
        self._to_publish: list[DomainEvent] = []

    async def __aenter__(self) -> Self:
        await self._database._lock.acquire()
        self._committed_state = self._database.tables.snapshot()
        self._pending = []
        self._to_publish = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # whatever was written after the last commit (or at all, without one) is undone
            await self.rollback()
        finally:
            self._committed_state = None
            self._database._lock.release()
        bus = self._database.event_bus
        events, self._to_publish = self._to_publish, []
        if bus is not None:
            for event in events:
                await bus.publish(event)

    async def commit(self) -> None:
        if self._committed_state is None:
            raise RuntimeError("commit() outside 'async with' of the unit of work")
        self._committed_state = self._database.tables.snapshot()
        self._to_publish.extend(self._pending)
        self._pending = []

    async def rollback(self) -> None:
        if self._committed_state is not None:
            self._database.tables.restore(self._committed_state)
            self._committed_state = self._database.tables.snapshot()
        self._pending = []

    def collect(self, event: DomainEvent) -> None:
        self._pending.append(event)
