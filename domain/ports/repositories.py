"""Repositories: one per aggregate, named by role. Adapters implement them per technology.

Conventions shared by every repository:

* ``add`` inserts a new aggregate; a duplicate natural key raises ``Conflict``.
* ``get`` returns the aggregate or ``None``; scoping to a centre is the use case's job.
* ``update`` stores a changed aggregate whose ``version`` is the one that was read; it returns
  the stored aggregate with ``version + 1``, or raises ``ConcurrentModification`` when another
  writer got there first (optimistic concurrency).
* ``list`` takes a filter struct and a ``Page`` and returns items in a stable order.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Protocol

import msgspec

from domain.analysis import AnalysisResult
from domain.annotations import Annotation, Measurement
from domain.billing import Invoice, InvoiceStatus, PriceListEntry
from domain.identity import ApiKey, Centre, Role, User
from domain.jobs import Job, JobStatus
from domain.reports import Report, ReportStatus
from domain.studies import Instance, Modality, Series, Study, StudyStatus, Urgency
from domain.values import Id, Page


class CentreFilter(msgspec.Struct, frozen=True, kw_only=True):
    active: bool | None = None
    name_contains: str | None = None


class CentreRepository(Protocol):
    async def add(self, centre: Centre) -> None: ...
    async def get(self, centre_id: Id) -> Centre | None: ...
    async def update(self, centre: Centre) -> Centre: ...
    async def list(self, where: CentreFilter, page: Page) -> list[Centre]:
        """Ordered by name, then id."""


class UserFilter(msgspec.Struct, frozen=True, kw_only=True):
    role: Role | None = None
    centre_id: Id | None = None
    active: bool | None = None


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Insert a user; a taken username or email raises ``Conflict``."""

    async def get(self, user_id: Id) -> User | None: ...
    async def get_by_username(self, username: str) -> User | None: ...
    async def update(self, user: User) -> User: ...
    async def list(self, where: UserFilter, page: Page) -> list[User]:
        """Ordered by username."""

    async def count(self, where: UserFilter) -> int: ...


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey) -> None: ...
    async def get(self, key_id: Id) -> ApiKey | None: ...
    async def get_by_prefix(self, prefix: str) -> ApiKey | None: ...
    async def update(self, key: ApiKey) -> ApiKey:
        """Store changes (revocation, last use); API keys carry no version."""

    async def list(self, centre_id: Id | None, page: Page) -> list[ApiKey]:
        """Keys of one centre (all centres when ``None``), oldest first."""


class StudyFilter(msgspec.Struct, frozen=True, kw_only=True):
    centre_id: Id | None = None
    status: StudyStatus | None = None
    modality: Modality | None = None
    urgency: Urgency | None = None
    assigned_radiologist_id: Id | None = None
    patient_id: str | None = None
    patient_name_contains: str | None = None
    study_date_from: date | None = None
    study_date_to: date | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


class StudyRepository(Protocol):
    async def add(self, study: Study) -> None:
        """Insert a study; a StudyInstanceUID already in the centre raises ``Conflict``."""

    async def get(self, study_id: Id) -> Study | None: ...
    async def get_by_code(self, code: str) -> Study | None: ...
    async def get_by_uid(self, centre_id: Id, study_instance_uid: str) -> Study | None: ...
    async def update(self, study: Study) -> Study: ...
    async def list(self, where: StudyFilter, page: Page) -> list[Study]:
        """Most urgent first (stat, urgent, routine), then newest first, then id."""

    async def count(self, where: StudyFilter) -> int: ...
    async def delete(self, study_id: Id) -> None:
        """Remove the study with its series, instances, jobs, results, reports and notes."""


class SeriesRepository(Protocol):
    async def add(self, series: Series) -> None: ...
    async def get(self, series_id: Id) -> Series | None: ...
    async def get_by_uid(self, study_id: Id, series_instance_uid: str) -> Series | None: ...
    async def list_for_study(self, study_id: Id) -> list[Series]:
        """Ordered by series number, then UID."""


class InstanceRepository(Protocol):
    async def add(self, instance: Instance) -> None:
        """Insert an instance; a SOPInstanceUID already in the centre raises ``Conflict``."""

    async def add_all(self, instances: Sequence[Instance]) -> None:
        """Insert several instances at once (one round trip where the store allows it); a
        SOPInstanceUID already in its centre, or twice among them, raises ``Conflict``."""

    async def get(self, instance_id: Id) -> Instance | None: ...
    async def get_by_uid(self, centre_id: Id, sop_instance_uid: str) -> Instance | None: ...
    async def get_by_uids(
        self, centre_id: Id, sop_instance_uids: Collection[str]
    ) -> dict[str, Instance]:
        """The centre's instances among ``sop_instance_uids``, keyed by SOPInstanceUID."""

    async def list_for_series(self, series_id: Id) -> list[Instance]:
        """Ordered by instance number, then UID."""

    async def list_for_study(self, study_id: Id) -> list[Instance]: ...


class JobFilter(msgspec.Struct, frozen=True, kw_only=True):
    centre_id: Id | None = None
    status: JobStatus | None = None
    study_id: Id | None = None
    created_by: Id | None = None
    model_id: str | None = None
    dead_letter: bool | None = None
    """``True``: failed jobs that used every attempt (``attempts >= max_attempts``)."""


class JobRepository(Protocol):
    async def add(self, job: Job) -> None: ...
    async def get(self, job_id: Id) -> Job | None: ...
    async def update(self, job: Job) -> Job: ...
    async def list_recoverable(self, now: datetime, limit: int) -> list[Job]:
        """Jobs that should be on a queue but may not be: pending or queued ones, and running
        ones whose lease expired before ``now``. Oldest first."""

    async def list(self, where: JobFilter, page: Page) -> list[Job]:
        """Newest first."""


class AnalysisResultRepository(Protocol):
    async def add(self, result: AnalysisResult) -> None:
        """Insert a result; a second result for the same job raises ``Conflict``."""

    async def get(self, result_id: Id) -> AnalysisResult | None: ...
    async def get_for_job(self, job_id: Id) -> AnalysisResult | None: ...
    async def latest_for_study(self, study_id: Id) -> AnalysisResult | None: ...


class ReportFilter(msgspec.Struct, frozen=True, kw_only=True):
    centre_id: Id | None = None
    study_id: Id | None = None
    author_id: Id | None = None
    status: ReportStatus | None = None
    is_ai_generated: bool | None = None
    analysis_result_id: Id | None = None


class ReportRepository(Protocol):
    async def add(self, report: Report) -> None: ...
    async def get(self, report_id: Id) -> Report | None: ...
    async def update(self, report: Report) -> Report:
        """Store a new version; earlier versions stay readable through ``versions``."""

    async def versions(self, report_id: Id) -> list[Report]:
        """Every stored version of the report, oldest first."""

    async def list(self, where: ReportFilter, page: Page) -> list[Report]:
        """Newest first."""


class MeasurementRepository(Protocol):
    async def add(self, measurement: Measurement) -> None: ...
    async def get(self, measurement_id: Id) -> Measurement | None: ...
    async def list_for_instance(self, instance_id: Id) -> list[Measurement]: ...
    async def delete(self, measurement_id: Id) -> None: ...


class AnnotationRepository(Protocol):
    async def add(self, annotation: Annotation) -> None: ...
    async def get(self, annotation_id: Id) -> Annotation | None: ...
    async def list_for_instance(self, instance_id: Id) -> list[Annotation]: ...
    async def delete(self, annotation_id: Id) -> None: ...


class PriceListRepository(Protocol):
    async def add(self, entry: PriceListEntry) -> None:
        """Insert a price; a second active price for the same centre and modality raises
        ``Conflict``."""

    async def get(self, entry_id: Id) -> PriceListEntry | None: ...
    async def find(self, centre_id: Id, modality: Modality) -> PriceListEntry | None:
        """The active price of a modality in a centre."""

    async def update(self, entry: PriceListEntry) -> PriceListEntry: ...
    async def list(self, centre_id: Id | None, page: Page) -> list[PriceListEntry]:
        """Prices of one centre (all when ``None``), ordered by centre id, then modality."""


class InvoiceFilter(msgspec.Struct, frozen=True, kw_only=True):
    centre_id: Id | None = None
    status: InvoiceStatus | None = None
    study_id: Id | None = None
    issued_from: date | None = None
    issued_to: date | None = None


class InvoiceRepository(Protocol):
    async def next_sequence(self, centre_id: Id, year: int) -> int:
        """Reserve the next invoice number of a centre and year inside the current transaction.

        Gap-free: a rolled-back transaction gives its number back; concurrent transactions
        of the same centre and year wait for each other.
        """

    async def add(self, invoice: Invoice) -> None:
        """Insert an invoice; a second non-cancelled invoice for a study raises ``Conflict``."""

    async def get(self, invoice_id: Id) -> Invoice | None: ...
    async def active_for_study(self, study_id: Id) -> Invoice | None: ...
    async def update(self, invoice: Invoice) -> Invoice: ...
    async def list(self, where: InvoiceFilter, page: Page) -> list[Invoice]:
        """Newest first."""
