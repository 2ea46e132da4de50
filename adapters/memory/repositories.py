"""In-memory repositories: the reference behaviour of every repository port."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from adapters.memory.state import Tables, matches, select, update_versioned
from domain.analysis import AnalysisResult
from domain.annotations import Annotation, Measurement
from domain.billing import Invoice, InvoiceStatus, PriceListEntry
from domain.errors import Conflict
from domain.identity import ApiKey, Centre, User
from domain.jobs import Job, JobStatus
from domain.ports.repositories import (
    CentreFilter,
    InvoiceFilter,
    JobFilter,
    ReportFilter,
    StudyFilter,
    UserFilter,
)
from domain.reports import Report
from domain.studies import Instance, Modality, Series, Study, Urgency
from domain.values import Id, Page

_URGENCY_RANK = {Urgency.STAT: 0, Urgency.URGENT: 1, Urgency.ROUTINE: 2}


class _Repository:
    table: str

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    @property
    def rows(self) -> dict[Any, Any]:
        return self._tables.data[self.table]

    def _insert(self, entity_id: Id, entity: object) -> None:
        if entity_id in self.rows:
            raise Conflict(f"{self.table} {entity_id} already exists")
        self.rows[entity_id] = entity


def _newest_first(created_at: datetime, entity_id: Id) -> tuple[float, int]:
    return (-created_at.timestamp(), -entity_id.int)


class MemoryCentreRepository(_Repository):
    table = "centres"

    async def add(self, centre: Centre) -> None:
        self._insert(centre.id, centre)

    async def get(self, centre_id: Id) -> Centre | None:
        return self.rows.get(centre_id)

    async def update(self, centre: Centre) -> Centre:
        return update_versioned(self.rows, centre, "centre")

    async def list(self, where: CentreFilter, page: Page) -> list[Centre]:
        needle = (where.name_contains or "").lower()
        return select(
            self.rows.values(),
            lambda c: matches(c.active, where.active) and needle in c.name.lower(),
            lambda c: (c.name, c.id),
            page,
        )


class MemoryUserRepository(_Repository):
    table = "users"

    async def add(self, user: User) -> None:
        for other in self.rows.values():
            if other.username == user.username or other.email.lower() == user.email.lower():
                raise Conflict("a user with this username or email already exists")
        self._insert(user.id, user)

    async def get(self, user_id: Id) -> User | None:
        return self.rows.get(user_id)

    async def get_by_username(self, username: str) -> User | None:
        return next((u for u in self.rows.values() if u.username == username), None)

    async def update(self, user: User) -> User:
        for other in self.rows.values():
            same = other.username == user.username or other.email.lower() == user.email.lower()
            if other.id != user.id and same:
                raise Conflict("a user with this username or email already exists")
        return update_versioned(self.rows, user, "user")

    def _match(self, user: User, where: UserFilter) -> bool:
        return (
            matches(user.role, where.role)
            and matches(user.centre_id, where.centre_id)
            and matches(user.active, where.active)
        )

    async def list(self, where: UserFilter, page: Page) -> list[User]:
        return select(
            self.rows.values(), lambda u: self._match(u, where), lambda u: u.username, page
        )

    async def count(self, where: UserFilter) -> int:
        return sum(1 for u in self.rows.values() if self._match(u, where))


class MemoryApiKeyRepository(_Repository):
    table = "api_keys"

    async def add(self, key: ApiKey) -> None:
        if any(k.prefix == key.prefix for k in self.rows.values()):
            raise Conflict("an API key with this prefix already exists")
        self._insert(key.id, key)

    async def get(self, key_id: Id) -> ApiKey | None:
        return self.rows.get(key_id)

    async def get_by_prefix(self, prefix: str) -> ApiKey | None:
        return next((k for k in self.rows.values() if k.prefix == prefix), None)

    async def update(self, key: ApiKey) -> ApiKey:
        if key.id not in self.rows:
            raise Conflict(f"API key {key.id} does not exist")
        self.rows[key.id] = key
        return key

    async def list(self, centre_id: Id | None, page: Page) -> list[ApiKey]:
        return select(
            self.rows.values(),
            lambda k: matches(k.centre_id, centre_id),
            lambda k: (k.created_at, k.id),
            page,
        )


class MemoryStudyRepository(_Repository):
    table = "studies"

    async def add(self, study: Study) -> None:
        for other in self.rows.values():
            if other.code == study.code:
                raise Conflict(f"study code {study.code} is taken")
            if (other.centre_id, other.study_instance_uid) == (
                study.centre_id,
                study.study_instance_uid,
            ):
                raise Conflict("this centre already has a study with this StudyInstanceUID")
        self._insert(study.id, study)

    async def get(self, study_id: Id) -> Study | None:
        return self.rows.get(study_id)

    async def get_by_code(self, code: str) -> Study | None:
        return next((s for s in self.rows.values() if s.code == code), None)

    async def get_by_uid(self, centre_id: Id, study_instance_uid: str) -> Study | None:
        return next(
            (
                s
                for s in self.rows.values()
                if s.centre_id == centre_id and s.study_instance_uid == study_instance_uid
            ),
            None,
        )

    async def update(self, study: Study) -> Study:
        return update_versioned(self.rows, study, "study")

    @staticmethod
    def _match(s: Study, w: StudyFilter) -> bool:
        name = (s.patient.name or "").lower()
        day = s.study_date
        return (
            matches(s.centre_id, w.centre_id)
            and matches(s.status, w.status)
            and matches(s.modality, w.modality)
            and matches(s.urgency, w.urgency)
            and matches(s.assigned_radiologist_id, w.assigned_radiologist_id)
            and matches(s.patient.patient_id, w.patient_id)
            and (w.patient_name_contains is None or w.patient_name_contains.lower() in name)
            and (w.study_date_from is None or (day is not None and day >= w.study_date_from))
            and (w.study_date_to is None or (day is not None and day <= w.study_date_to))
            and (w.created_from is None or s.created_at >= w.created_from)
            and (w.created_to is None or s.created_at <= w.created_to)
        )

    async def list(self, where: StudyFilter, page: Page) -> list[Study]:
        return select(
            self.rows.values(),
            lambda s: self._match(s, where),
            lambda s: (_URGENCY_RANK[s.urgency], *_newest_first(s.created_at, s.id)),
            page,
        )

    async def count(self, where: StudyFilter) -> int:
        return sum(1 for s in self.rows.values() if self._match(s, where))

    async def delete(self, study_id: Id) -> None:
        data = self._tables.data
        data["studies"].pop(study_id, None)
        instance_ids = {i.id for i in data["instances"].values() if i.study_id == study_id}
        report_ids = {r.id for r in data["reports"].values() if r.study_id == study_id}
        for table, belongs in (
            ("series", lambda r: r.study_id == study_id),
            ("instances", lambda r: r.study_id == study_id),
            ("jobs", lambda r: r.study_id == study_id),
            ("results", lambda r: r.study_id == study_id),
            ("reports", lambda r: r.study_id == study_id),
            ("invoices", lambda r: r.study_id == study_id),
            ("measurements", lambda r: r.instance_id in instance_ids),
            ("annotations", lambda r: r.instance_id in instance_ids),
        ):
            for key in [k for k, row in data[table].items() if belongs(row)]:
                del data[table][key]
        for report_id in report_ids:
            data["report_versions"].pop(report_id, None)


class MemorySeriesRepository(_Repository):
    table = "series"

    async def add(self, series: Series) -> None:
        if await self.get_by_uid(series.study_id, series.series_instance_uid) is not None:
            raise Conflict("this study already has a series with this SeriesInstanceUID")
        self._insert(series.id, series)

    async def get(self, series_id: Id) -> Series | None:
        return self.rows.get(series_id)

    async def get_by_uid(self, study_id: Id, series_instance_uid: str) -> Series | None:
        return next(
            (
                s
                for s in self.rows.values()
                if s.study_id == study_id and s.series_instance_uid == series_instance_uid
            ),
            None,
        )

    async def list_for_study(self, study_id: Id) -> list[Series]:
        found = [s for s in self.rows.values() if s.study_id == study_id]
        return sorted(
            found,
            key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid),
        )


class MemoryInstanceRepository(_Repository):
    table = "instances"

    async def add(self, instance: Instance) -> None:
        if await self.get_by_uid(instance.centre_id, instance.sop_instance_uid) is not None:
            raise Conflict("this centre already has an instance with this SOPInstanceUID")
        self._insert(instance.id, instance)

    async def add_all(self, instances: Sequence[Instance]) -> None:
        for instance in instances:
            await self.add(instance)

    async def get(self, instance_id: Id) -> Instance | None:
        return self.rows.get(instance_id)

    async def get_by_uid(self, centre_id: Id, sop_instance_uid: str) -> Instance | None:
        return next(
            (
                i
                for i in self.rows.values()
                if i.centre_id == centre_id and i.sop_instance_uid == sop_instance_uid
            ),
            None,
        )

    async def get_by_uids(
        self, centre_id: Id, sop_instance_uids: Collection[str]
    ) -> dict[str, Instance]:
        wanted = set(sop_instance_uids)
        return {
            i.sop_instance_uid: i
            for i in self.rows.values()
            if i.centre_id == centre_id and i.sop_instance_uid in wanted
        }

    @staticmethod
    def _order(i: Instance) -> tuple[bool, int, str]:
        return (i.instance_number is None, i.instance_number or 0, i.sop_instance_uid)

    async def list_for_series(self, series_id: Id) -> list[Instance]:
        return sorted((i for i in self.rows.values() if i.series_id == series_id), key=self._order)

    async def list_for_study(self, study_id: Id) -> list[Instance]:
        return sorted((i for i in self.rows.values() if i.study_id == study_id), key=self._order)


class MemoryJobRepository(_Repository):
    table = "jobs"

    async def add(self, job: Job) -> None:
        self._insert(job.id, job)

    async def get(self, job_id: Id) -> Job | None:
        return self.rows.get(job_id)

    async def update(self, job: Job) -> Job:
        return update_versioned(self.rows, job, "job")

    async def list_recoverable(self, now: datetime, limit: int) -> list[Job]:
        def recoverable(job: Job) -> bool:
            if job.status in (JobStatus.PENDING, JobStatus.QUEUED):
                return True
            return (
                job.status is JobStatus.RUNNING
                and job.lease_expires_at is not None
                and job.lease_expires_at < now
            )

        found = sorted(filter(recoverable, self.rows.values()), key=lambda j: (j.created_at, j.id))
        return found[:limit]

    async def list(self, where: JobFilter, page: Page) -> list[Job]:
        return select(
            self.rows.values(),
            lambda j: (
                matches(j.centre_id, where.centre_id)
                and matches(j.status, where.status)
                and matches(j.study_id, where.study_id)
                and matches(j.created_by, where.created_by)
                and matches(j.model_id, where.model_id)
                and (where.dead_letter is None or j.dead_letter == where.dead_letter)
            ),
            lambda j: _newest_first(j.created_at, j.id),
            page,
        )


class MemoryAnalysisResultRepository(_Repository):
    table = "results"

    async def add(self, result: AnalysisResult) -> None:
        if await self.get_for_job(result.job_id) is not None:
            raise Conflict(f"job {result.job_id} already has a result")
        self._insert(result.id, result)

    async def get(self, result_id: Id) -> AnalysisResult | None:
        return self.rows.get(result_id)

    async def get_for_job(self, job_id: Id) -> AnalysisResult | None:
        return next((r for r in self.rows.values() if r.job_id == job_id), None)

    async def latest_for_study(self, study_id: Id) -> AnalysisResult | None:
        found = [r for r in self.rows.values() if r.study_id == study_id]
        return min(found, key=lambda r: _newest_first(r.created_at, r.id), default=None)


class MemoryReportRepository(_Repository):
    table = "reports"

    @property
    def _versions(self) -> dict[Id, list[Report]]:
        return self._tables.data["report_versions"]

    async def add(self, report: Report) -> None:
        self._insert(report.id, report)
        self._versions[report.id] = [report]

    async def get(self, report_id: Id) -> Report | None:
        return self.rows.get(report_id)

    async def update(self, report: Report) -> Report:
        stored = update_versioned(self.rows, report, "report")
        # a new list, so that a snapshot taken before this transaction stays untouched
        self._versions[report.id] = [*self._versions.get(report.id, []), stored]
        return stored

    async def versions(self, report_id: Id) -> list[Report]:
        return list(self._versions.get(report_id, []))

    async def list(self, where: ReportFilter, page: Page) -> list[Report]:
        return select(
            self.rows.values(),
            lambda r: (
                matches(r.centre_id, where.centre_id)
                and matches(r.study_id, where.study_id)
                and matches(r.author_id, where.author_id)
                and matches(r.status, where.status)
                and matches(r.is_ai_generated, where.is_ai_generated)
                and matches(r.analysis_result_id, where.analysis_result_id)
            ),
            lambda r: _newest_first(r.created_at, r.id),
            page,
        )


class MemoryMeasurementRepository(_Repository):
    table = "measurements"

    async def add(self, measurement: Measurement) -> None:
        self._insert(measurement.id, measurement)

    async def get(self, measurement_id: Id) -> Measurement | None:
        return self.rows.get(measurement_id)

    async def list_for_instance(self, instance_id: Id) -> list[Measurement]:
        found = [m for m in self.rows.values() if m.instance_id == instance_id]
        return sorted(found, key=lambda m: (m.created_at, m.id))

    async def delete(self, measurement_id: Id) -> None:
        self.rows.pop(measurement_id, None)


class MemoryAnnotationRepository(_Repository):
    table = "annotations"

    async def add(self, annotation: Annotation) -> None:
        self._insert(annotation.id, annotation)

    async def get(self, annotation_id: Id) -> Annotation | None:
        return self.rows.get(annotation_id)

    async def list_for_instance(self, instance_id: Id) -> list[Annotation]:
        found = [a for a in self.rows.values() if a.instance_id == instance_id]
        return sorted(found, key=lambda a: (a.created_at, a.id))

    async def delete(self, annotation_id: Id) -> None:
        self.rows.pop(annotation_id, None)


class MemoryPriceListRepository(_Repository):
    table = "prices"

    def _check_unique(self, entry: PriceListEntry) -> None:
        if not entry.active:
            return
        for other in self.rows.values():
            same = (other.centre_id, other.modality) == (entry.centre_id, entry.modality)
            if other.id != entry.id and other.active and same:
                raise Conflict(f"the centre already has an active price for {entry.modality.value}")

    async def add(self, entry: PriceListEntry) -> None:
        self._check_unique(entry)
        self._insert(entry.id, entry)

    async def get(self, entry_id: Id) -> PriceListEntry | None:
        return self.rows.get(entry_id)

    async def find(self, centre_id: Id, modality: Modality) -> PriceListEntry | None:
        return next(
            (
                p
                for p in self.rows.values()
                if p.active and p.centre_id == centre_id and p.modality is modality
            ),
            None,
        )

    async def update(self, entry: PriceListEntry) -> PriceListEntry:
        self._check_unique(entry)
        return update_versioned(self.rows, entry, "price")

    async def list(self, centre_id: Id | None, page: Page) -> list[PriceListEntry]:
        return select(
            self.rows.values(),
            lambda p: matches(p.centre_id, centre_id),
            lambda p: (str(p.centre_id), p.modality.value),
            page,
        )


class MemoryInvoiceRepository(_Repository):
    table = "invoices"

    async def next_sequence(self, centre_id: Id, year: int) -> int:
        # the unit of work holds the database lock, so this is serial like a row lock
        counters: dict[tuple[Id, int], int] = self._tables.data["invoice_sequences"]
        counters[(centre_id, year)] = counters.get((centre_id, year), 0) + 1
        return counters[(centre_id, year)]

    async def add(self, invoice: Invoice) -> None:
        if await self.active_for_study(invoice.study_id) is not None:
            raise Conflict("the study already has an invoice that is not cancelled")
        for other in self.rows.values():
            key = (other.centre_id, other.year, other.sequence)
            if key == (invoice.centre_id, invoice.year, invoice.sequence):
                raise Conflict(f"invoice number {invoice.number} is taken")
        self._insert(invoice.id, invoice)

    async def get(self, invoice_id: Id) -> Invoice | None:
        return self.rows.get(invoice_id)

    async def active_for_study(self, study_id: Id) -> Invoice | None:
        return next(
            (
                i
                for i in self.rows.values()
                if i.study_id == study_id and i.status is not InvoiceStatus.CANCELLED
            ),
            None,
        )

    async def update(self, invoice: Invoice) -> Invoice:
        return update_versioned(self.rows, invoice, "invoice")

    async def list(self, where: InvoiceFilter, page: Page) -> list[Invoice]:
        return select(
            self.rows.values(),
            lambda i: (
                matches(i.centre_id, where.centre_id)
                and matches(i.status, where.status)
                and matches(i.study_id, where.study_id)
                and (where.issued_from is None or i.issued_on >= where.issued_from)
                and (where.issued_to is None or i.issued_on <= where.issued_to)
            ),
            lambda i: _newest_first(i.created_at, i.id),
            page,
        )
