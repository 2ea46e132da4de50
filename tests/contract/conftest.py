"""Contract-suite fixtures: every port suite runs against each adapter that implements it.

``uow_factory`` and ``audit_log`` are parametrised with ids ``memory`` and ``postgres``; the
postgres ones are marked ``postgres`` and talk to a real server (see tests/fixtures/postgres.py).
``make`` builds valid aggregates with strictly increasing timestamps, so orderings are
deterministic without depending on the order tests run in.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from domain.analysis import AnalysisResult, Detection, InputMetadata, PatientBox, VoxelBox
from domain.annotations import Annotation, Measurement, MeasurementKind
from domain.audit import AuditEvent, Outcome
from domain.billing import Currency, Invoice, Money, PriceListEntry, invoice_number
from domain.events import DomainEvent
from domain.identity import ApiKey, Centre, Role, Scope, User
from domain.jobs import Job
from domain.ports import AuditLog, UnitOfWork, UnitOfWorkFactory
from domain.reports import Report
from domain.studies import Instance, Modality, Patient, Series, Study, new_study_code

ADAPTERS = ["memory", "postgres"]
T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "postgres" in callspec.id.split("-"):
            item.add_marker(pytest.mark.postgres)


class RecordingEventBus:
    """An EventBus that remembers what was published, in order."""

    def __init__(self) -> None:
        self.published: list[DomainEvent] = []

    async def publish(self, event: DomainEvent) -> None:
        self.published.append(event)

    async def subscribe(self, key: str) -> AsyncIterator[DomainEvent]:
        for event in list(self.published):
            if event.key == key:
                yield event


@pytest.fixture
def event_bus() -> RecordingEventBus:
    return RecordingEventBus()


def _memory_module() -> Any:
    try:
        import adapters.memory as memory
    except ImportError as err:  # pragma: no cover - while the adapter is being written
        pytest.skip(f"in-memory adapter not importable: {err}")
    if not hasattr(memory, "MemoryDatabase"):
        pytest.skip("in-memory adapter not available: adapters.memory has no MemoryDatabase")
    return memory


@pytest.fixture(params=ADAPTERS)
def uow_factory(request: pytest.FixtureRequest, event_bus: RecordingEventBus) -> UnitOfWorkFactory:
    """A unit-of-work factory on a fresh, empty store, publishing to ``event_bus``."""
    if request.param == "memory":
        return _memory_module().MemoryDatabase(event_bus=event_bus).unit_of_work  # type: ignore[no-any-return]
    from adapters.postgres.unit_of_work import PostgresUnitOfWork

    database = request.getfixturevalue("postgres_database")
    return lambda: PostgresUnitOfWork(database.pool, event_bus=event_bus)


@pytest.fixture(params=ADAPTERS)
def audit_log(request: pytest.FixtureRequest) -> AuditLog:
    if request.param == "memory":
        memory = _memory_module()
        if not hasattr(memory, "MemoryAuditLog"):
            pytest.skip("in-memory adapter not available: adapters.memory has no MemoryAuditLog")
        return memory.MemoryAuditLog()  # type: ignore[no-any-return]
    from adapters.postgres.audit_log import PostgresAuditLog

    return PostgresAuditLog(request.getfixturevalue("postgres_database"))


# Which repository of a unit of work stores which aggregate.
_REPOSITORY_OF: dict[type, Callable[[UnitOfWork], Any]] = {
    Centre: lambda uow: uow.centres,
    User: lambda uow: uow.users,
    ApiKey: lambda uow: uow.api_keys,
    Study: lambda uow: uow.studies,
    Series: lambda uow: uow.series,
    Instance: lambda uow: uow.instances,
    Job: lambda uow: uow.jobs,
    AnalysisResult: lambda uow: uow.results,
    Report: lambda uow: uow.reports,
    Measurement: lambda uow: uow.measurements,
    Annotation: lambda uow: uow.annotations,
    PriceListEntry: lambda uow: uow.prices,
    Invoice: lambda uow: uow.invoices,
}


async def store(uow_factory: UnitOfWorkFactory, *aggregates: object) -> None:
    """Add the aggregates, in order, in one committed unit of work."""
    async with uow_factory() as uow:
        for aggregate in aggregates:
            await _REPOSITORY_OF[type(aggregate)](uow).add(aggregate)
        await uow.commit()


class Make:
    """Builds valid aggregates; every timestamp is later than the one before."""

    def __init__(self) -> None:
        self._tick = 0

    def now(self) -> datetime:
        self._tick += 1
        return T0 + timedelta(minutes=self._tick)

    @staticmethod
    def id() -> uuid.UUID:
        return uuid.uuid4()

    def centre(self, **changes: Any) -> Centre:
        at = self.now()
        fields: dict[str, Any] = {
            "id": self.id(),
            "name": "St. Elsewhere Imaging",
            "created_at": at,
            "updated_at": at,
        }
        return Centre(**(fields | changes))

    def user(self, centre: Centre | None, *, role: Role = Role.RADIOLOGIST, **changes: Any) -> User:
        at = self.now()
        handle = uuid.uuid4().hex[:10]
        fields: dict[str, Any] = {
            "id": self.id(),
            "username": f"user-{handle}",
            "email": f"{handle}@example.org",
            "full_name": "Dr. Test",
            "role": role,
            "centre_id": None if centre is None else centre.id,
            "password_hash": "$argon2id$not-a-real-hash",
            "created_at": at,
            "updated_at": at,
        }
        return User(**(fields | changes))

    def api_key(self, centre: Centre, **changes: Any) -> ApiKey:
        fields: dict[str, Any] = {
            "id": self.id(),
            "name": "pacs bridge",
            "centre_id": centre.id,
            "user_id": None,
            "prefix": f"hk_{uuid.uuid4().hex[:8]}",
            "secret_hash": "sha256:abc",
            "scopes": frozenset({Scope.STUDIES_READ, Scope.JOBS_WRITE}),
            "created_at": self.now(),
        }
        return ApiKey(**(fields | changes))

    def study(self, centre: Centre, **changes: Any) -> Study:
        at = self.now()
        fields: dict[str, Any] = {
            "id": self.id(),
            "centre_id": centre.id,
            "code": new_study_code(),
            "study_instance_uid": f"2.25.{uuid.uuid4().int}",
            "patient": Patient(
                name="DOE^JANE", patient_id="P-001", age="045Y", birth_date=date(1980, 2, 29)
            ),
            "modality": Modality.CT,
            "study_date": date(2026, 1, 5),
            "created_at": at,
            "updated_at": at,
        }
        return Study(**(fields | changes))

    def series(self, study: Study, **changes: Any) -> Series:
        fields: dict[str, Any] = {
            "id": self.id(),
            "study_id": study.id,
            "centre_id": study.centre_id,
            "series_instance_uid": f"2.25.{uuid.uuid4().int}",
            "modality": study.modality,
            "series_number": 1,
            "created_at": self.now(),
        }
        return Series(**(fields | changes))

    def instance(self, series: Series, **changes: Any) -> Instance:
        uid = f"2.25.{uuid.uuid4().int}"
        fields: dict[str, Any] = {
            "id": self.id(),
            "series_id": series.id,
            "study_id": series.study_id,
            "centre_id": series.centre_id,
            "sop_instance_uid": uid,
            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
            "instance_number": 1,
            "storage_key": f"studies/{series.study_id}/{uid}.dcm",
            "size_bytes": 525_312,
            "created_at": self.now(),
        }
        return Instance(**(fields | changes))

    def job(self, study: Study, **changes: Any) -> Job:
        at = self.now()
        fields: dict[str, Any] = {
            "id": self.id(),
            "centre_id": study.centre_id,
            "study_id": study.id,
            "model_id": "demo-unet",
            "created_at": at,
            "updated_at": at,
        }
        return Job(**(fields | changes))

    def result(self, job: Job, **changes: Any) -> AnalysisResult:
        fields: dict[str, Any] = {
            "id": self.id(),
            "job_id": job.id,
            "study_id": job.study_id,
            "centre_id": job.centre_id,
            "model_id": job.model_id,
            "model_version": "1.0.0",
            "detections": (
                Detection(
                    label="tumor",
                    confidence=0.91,
                    voxel_box=VoxelBox(start=(3, 10, 12), stop=(7, 20, 25)),
                    patient_box=PatientBox(
                        minimum_mm=(-10.5, 4.0, 30.0), maximum_mm=(2.25, 19.0, 42.5)
                    ),
                    mask_key="masks/m1.nii.gz",
                ),
            ),
            "summary": "one lesion",
            "overall_confidence": 0.91,
            "input": InputMetadata(
                format="dicom", dimensions=(40, 128, 128), voxel_spacing_mm=(2.5, 0.7, 0.7)
            ),
            "created_at": self.now(),
        }
        return AnalysisResult(**(fields | changes))

    def report(self, study: Study, **changes: Any) -> Report:
        at = self.now()
        fields: dict[str, Any] = {
            "id": self.id(),
            "centre_id": study.centre_id,
            "study_id": study.id,
            "findings": "A 12 mm nodule in the right upper lobe.",
            "impression": "Indeterminate nodule; follow-up CT in 3 months.",
            "created_at": at,
            "updated_at": at,
        }
        return Report(**(fields | changes))

    def measurement(self, instance: Instance, **changes: Any) -> Measurement:
        fields: dict[str, Any] = {
            "id": self.id(),
            "centre_id": instance.centre_id,
            "instance_id": instance.id,
            "kind": MeasurementKind.LINE,
            "points": ((10.0, 12.5), (40.25, 60.0)),
            "value": 23.4,
            "unit": "mm",
            "created_at": self.now(),
        }
        return Measurement(**(fields | changes))

    def annotation(self, instance: Instance, **changes: Any) -> Annotation:
        fields: dict[str, Any] = {
            "id": self.id(),
            "centre_id": instance.centre_id,
            "instance_id": instance.id,
            "text": "calcified",
            "position": (128.5, 64.0),
            "created_at": self.now(),
        }
        return Annotation(**(fields | changes))

    def price(
        self,
        centre: Centre,
        modality: Modality = Modality.CT,
        amount: str = "150.00",
        **changes: Any,
    ) -> PriceListEntry:
        at = self.now()
        fields: dict[str, Any] = {
            "id": self.id(),
            "centre_id": centre.id,
            "modality": modality,
            "price": Money(amount=Decimal(amount), currency=Currency.USD),
            "created_at": at,
            "updated_at": at,
        }
        return PriceListEntry(**(fields | changes))

    def invoice(self, study: Study, sequence: int, **changes: Any) -> Invoice:
        at = self.now()
        fields: dict[str, Any] = {
            "id": self.id(),
            "centre_id": study.centre_id,
            "study_id": study.id,
            "number": invoice_number("STE", at.year, sequence),
            "year": at.year,
            "sequence": sequence,
            "total": Money(amount=Decimal("150.00"), currency=Currency.USD),
            "issued_on": at.date(),
            "created_at": at,
            "updated_at": at,
        }
        return Invoice(**(fields | changes))

    def audit_event(self, **changes: Any) -> AuditEvent:
        fields: dict[str, Any] = {
            "id": self.id(),
            "at": self.now(),
            "actor_kind": "user",
            "actor_id": self.id(),
            "actor_display": "dr-house",
            "centre_id": self.id(),
            "action": "study.read",
            "resource_type": "study",
            "resource_id": str(self.id()),
            "outcome": Outcome.SUCCESS,
        }
        return AuditEvent(**(fields | changes))


@pytest.fixture
def make() -> Make:
    return Make()


def replace(aggregate: Any, **changes: Any) -> Any:
    return msgspec.structs.replace(aggregate, **changes)
