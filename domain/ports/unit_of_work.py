"""The transactional unit of work: one transaction, every repository, events after commit."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from domain.events import DomainEvent
from domain.ports.dicomweb import DicomQueryRepository
from domain.ports.repositories import (
    AnalysisResultRepository,
    AnnotationRepository,
    ApiKeyRepository,
    CentreRepository,
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


class UnitOfWork(Protocol):
    """An async context manager around one transaction.

    Leaving the block without ``commit()`` rolls everything back. Events passed to
    ``collect`` are published through the event bus only after a successful commit.

    Usage::

        async with uow_factory() as uow:
            study = await uow.studies.get(study_id)
            await uow.studies.update(study.assign(radiologist_id, at=now))
            uow.collect(StudyAssigned(...))
            await uow.commit()
    """

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

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    def collect(self, event: DomainEvent) -> None: ...


class UnitOfWorkFactory(Protocol):
    """Makes a fresh unit of work per use-case call."""

    def __call__(self) -> UnitOfWork: ...
