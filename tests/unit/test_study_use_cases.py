"""Ingest, reading and deleting studies through the use cases, on in-memory adapters.

Files are described by their ``ImageFields`` directly (what a reader would have returned), so
these tests are about the archive's rules, not about parsing.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from itertools import count
from types import TracebackType
from typing import Any, Self

import pytest

from adapters.memory import MemoryBlobStore
from adapters.system import UuidIdGenerator
from domain.audit import AuditQuery
from domain.errors import InvalidInput, NotFound, PermissionDenied, Unavailable
from domain.events import DomainEvent, StudyUploaded
from domain.identity import Principal, PrincipalKind, Scope
from domain.imaging import ImageFields, ImageFormat, InstanceFields, SeriesFields, StudyFields
from domain.ports.blobs import BlobInfo
from domain.ports.repositories import StudyFilter
from domain.ports.unit_of_work import UnitOfWork
from domain.services.ingest import IngestService
from domain.services.studies import StudyService
from domain.services.uploads import IngestStudies, RejectedFile, StudyOverrides, UploadedFile
from domain.studies import Modality, Patient, Sex, Urgency
from domain.values import Page
from tests.unit.identity_world import World, build_world

_serial = count(1)


def uid() -> str:
    return f"1.2.826.0.1.3680043.8.498.{next(_serial)}{UuidIdGenerator().new_id().int % 10**12}"


@dataclass
class Series:
    study_uid: str
    series_uid: str


def a_series() -> Series:
    return Series(study_uid=uid(), series_uid=uid())


def a_file(
    series: Series | None = None,
    *,
    sop_uid: str | None = None,
    name: str = "slice.dcm",
    fmt: ImageFormat = ImageFormat.DICOM,
    patient_name: str = "Doe^Jane",
    instance_number: int | None = None,
) -> UploadedFile:
    series = series or a_series()
    sop = sop_uid or uid()
    fields = ImageFields(
        study=StudyFields(
            study_instance_uid=series.study_uid,
            patient=Patient(name=patient_name, patient_id="P-1"),
            modality=Modality.CT,
        ),
        series=SeriesFields(series_instance_uid=series.series_uid, modality=Modality.CT),
        instance=InstanceFields(
            sop_instance_uid=sop,
            sop_class_uid="1.2.3",
            format=fmt,
            instance_number=instance_number,
        ),
        header={"00100010": {"vr": "PN", "Value": [{"Alphabetic": patient_name}]}},
    )
    return UploadedFile(file_name=name, data=f"bytes of {sop}".encode(), fields=fields)


class RecordingBus:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    async def publish(self, event: DomainEvent) -> None:
        self.events.append(event)


class FlakyBlobStore(MemoryBlobStore):
    """Fails the ``fail_on``-th put, as a full disk or a lost connection would."""

    def __init__(self, fail_on: int) -> None:
        super().__init__()
        self.fail_on = fail_on
        self.puts = 0

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> BlobInfo:
        self.puts += 1
        if self.puts == self.fail_on:
            raise Unavailable("the blob store is full")
        return await super().put(key, data, content_type=content_type)

    def keys(self) -> list[str]:
        return sorted(self._objects)


class FailingCommit:
    """A unit of work whose commit fails, as a database that went away would."""

    def __init__(self, inner: UnitOfWork) -> None:
        self._inner = inner

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._inner.__aexit__(t, e, tb)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def commit(self) -> None:
        raise Unavailable("the database went away")


@dataclass
class Archive:
    world: World
    blobs: FlakyBlobStore
    bus: RecordingBus
    ingest: IngestService
    studies: StudyService

    def as_(self, name: str) -> Principal:
        return self.world.as_(name)


def build_archive(world: World, *, fail_on: int = 0, codes: Iterator[str] | None = None) -> Archive:
    bus = RecordingBus()
    world.db.event_bus = bus  # type: ignore[assignment]
    blobs = FlakyBlobStore(fail_on)
    extra = {"codes": codes.__next__} if codes is not None else {}
    ingest = IngestService(
        uow=world.db.unit_of_work,
        blobs=blobs,
        clock=world.clock,
        ids=UuidIdGenerator(),
        auditor=world.auditor,
        **extra,
    )
    studies = StudyService(uow=world.db.unit_of_work, blobs=blobs, auditor=world.auditor)
    return Archive(world=world, blobs=blobs, bus=bus, ingest=ingest, studies=studies)


@pytest.fixture
async def archive() -> Archive:
    return build_archive(await build_world())


def upload(*files: UploadedFile, **overrides: str) -> IngestStudies:
    return IngestStudies(files=files, overrides=StudyOverrides(**overrides))


async def all_studies(archive: Archive) -> list[Any]:
    found, _ = await archive.studies.list(archive.world.admin, StudyFilter(), Page())
    return found


async def test_an_upload_is_stored_byte_for_byte_under_its_centre_and_study(
    archive: Archive,
) -> None:
    series = a_series()
    files = [a_file(series), a_file(series)]

    result = await archive.ingest.ingest(archive.as_("technician-a"), upload(*files))

    (entry,) = result.studies
    assert entry.created and entry.stored == 2 and entry.duplicates == 0
    study = entry.study
    assert study.centre_id == archive.world.centre_a and len(study.code) == 8
    for file, stored in zip(files, result.files, strict=True):
        key = f"centres/{archive.world.centre_a}/studies/{study.id}/{stored.instance_id}.dcm"
        assert await archive.blobs.get(key) == file.data
        instance = await archive.studies.instance(
            archive.as_("radiologist-a"), stored.instance_id, "t"
        )
        assert instance.storage_key == key
        assert instance.header == file.fields.header
    assert [type(e) for e in archive.bus.events] == [StudyUploaded]
    assert isinstance(archive.bus.events[0], StudyUploaded)
    assert archive.bus.events[0].instance_count == 2


async def test_the_same_instance_sent_twice_is_stored_once_and_reported_as_a_duplicate(
    archive: Archive,
) -> None:
    file = a_file()
    first = await archive.ingest.ingest(archive.as_("technician-a"), upload(file))
    again = await archive.ingest.ingest(archive.as_("manager-a"), upload(file, file))

    assert (again.stored, again.duplicates) == (0, 2)
    assert {f.instance_id for f in again.files} == {first.files[0].instance_id}
    assert not again.studies[0].created
    assert len(archive.blobs.keys()) == 1


async def test_instances_sent_in_two_uploads_join_one_study_and_one_series(
    archive: Archive,
) -> None:
    series = a_series()
    technician = archive.as_("technician-a")
    first = await archive.ingest.ingest(technician, upload(a_file(series), a_file(series)))
    second = await archive.ingest.ingest(technician, upload(a_file(series)))

    assert second.studies[0].study.id == first.studies[0].study.id
    assert not second.studies[0].created
    listed = await archive.studies.series(technician, first.studies[0].study.id)
    assert [(s.series_instance_uid, n) for s, n in listed] == [(series.series_uid, 3)]
    assert len(await all_studies(archive)) == 1


async def test_two_studies_in_one_upload_make_two_studies(archive: Archive) -> None:
    result = await archive.ingest.ingest(
        archive.as_("technician-a"), upload(a_file(), a_file(), a_file(a_series()))
    )

    assert len(result.studies) == 3
    assert len({s.study.code for s in result.studies}) == 3


async def test_two_centres_sending_the_same_study_each_keep_their_own_copy(
    archive: Archive,
) -> None:
    file = a_file()
    mine = await archive.ingest.ingest(archive.as_("technician-a"), upload(file))
    theirs = await archive.ingest.ingest(archive.as_("technician-b"), upload(file))

    assert theirs.stored == 1 and theirs.studies[0].created
    assert theirs.studies[0].study.id != mine.studies[0].study.id
    assert len(archive.blobs.keys()) == 2
    with pytest.raises(NotFound):
        await archive.studies.get(archive.as_("radiologist-b"), mine.studies[0].study.id)


async def test_a_blob_store_failure_half_way_leaves_no_file_and_no_study() -> None:
    archive = build_archive(await build_world(), fail_on=3)
    series = a_series()

    with pytest.raises(Unavailable):
        await archive.ingest.ingest(
            archive.as_("technician-a"), upload(*(a_file(series) for _ in range(4)))
        )

    assert archive.blobs.keys() == []
    assert await all_studies(archive) == []
    assert archive.bus.events == []


async def test_a_database_failure_at_commit_removes_the_files_already_stored(
    archive: Archive,
) -> None:
    db = archive.world.db
    failing = IngestService(
        uow=lambda: FailingCommit(db.unit_of_work()),  # type: ignore[arg-type,return-value]
        blobs=archive.blobs,
        clock=archive.world.clock,
        ids=UuidIdGenerator(),
        auditor=archive.world.auditor,
    )

    with pytest.raises(Unavailable):
        await failing.ingest(archive.as_("technician-a"), upload(a_file(), a_file()))

    assert archive.blobs.keys() == []
    assert await all_studies(archive) == []


async def test_a_taken_study_code_is_never_given_twice() -> None:
    world = await build_world()
    archive = build_archive(world, codes=iter(["TAKEN234", "TAKEN234", "TAKEN234", "FRESH789"]))

    first = await archive.ingest.ingest(archive.as_("technician-a"), upload(a_file()))
    second = await archive.ingest.ingest(archive.as_("technician-b"), upload(a_file()))

    assert first.studies[0].study.code == "TAKEN234"
    assert second.studies[0].study.code == "FRESH789"


async def test_a_file_without_a_uid_is_refused_by_name_and_nothing_is_stored(
    archive: Archive,
) -> None:
    good = a_file()
    bad = a_file(sop_uid=" ", name="broken.dcm")

    with pytest.raises(RejectedFile) as refused:
        await archive.ingest.ingest(archive.as_("technician-a"), upload(good, bad))

    assert refused.value.file_name == "broken.dcm"
    assert "SOPInstanceUID" in refused.value.detail
    assert archive.blobs.keys() == []


async def test_radiologists_and_keys_without_studies_write_may_not_upload(
    archive: Archive,
) -> None:
    key = Principal(
        kind=PrincipalKind.API_KEY,
        id=UuidIdGenerator().new_id(),
        role=None,
        centre_id=archive.world.centre_a,
        scopes=frozenset({Scope.STUDIES_READ}),
    )
    writer = Principal(
        kind=PrincipalKind.API_KEY,
        id=UuidIdGenerator().new_id(),
        role=None,
        centre_id=archive.world.centre_a,
        scopes=frozenset({Scope.STUDIES_WRITE}),
    )

    with pytest.raises(PermissionDenied):
        await archive.ingest.ingest(archive.as_("radiologist-a"), upload(a_file()))
    with pytest.raises(PermissionDenied):
        await archive.ingest.ingest(key, upload(a_file()))
    stored = await archive.ingest.ingest(writer, upload(a_file()))
    assert stored.studies[0].study.uploaded_by is None  # a key is not a user


async def test_an_admin_names_the_centre_and_others_only_their_own(archive: Archive) -> None:
    world = archive.world
    with pytest.raises(InvalidInput):
        await archive.ingest.ingest(world.admin, upload(a_file()))
    with pytest.raises(NotFound):
        await archive.ingest.ingest(
            world.admin, IngestStudies(files=[a_file()], centre_id=UuidIdGenerator().new_id())
        )
    with pytest.raises(NotFound):
        await archive.ingest.ingest(
            archive.as_("technician-a"), IngestStudies(files=[a_file()], centre_id=world.centre_b)
        )

    done = await archive.ingest.ingest(
        world.admin, IngestStudies(files=[a_file()], centre_id=world.centre_b)
    )
    assert done.studies[0].study.centre_id == world.centre_b


async def test_study_fields_given_with_an_upload_are_normalised_onto_new_studies(
    archive: Archive,
) -> None:
    series = a_series()
    result = await archive.ingest.ingest(
        archive.as_("technician-a"),
        upload(
            a_file(series),
            patient_name="Roe^Richard",
            patient_age="45",
            patient_sex="female",
            modality="MRI",
            description="Brain, contrast",
            urgency="STAT",
        ),
    )
    study = result.studies[0].study
    assert study.patient.name == "Roe^Richard" and study.patient.patient_id == "P-1"
    assert (study.patient.age, study.patient.sex) == ("045Y", Sex.FEMALE)
    assert (study.modality, study.urgency) == (Modality.MR, Urgency.STAT)
    assert study.description == "Brain, contrast"

    joined = await archive.ingest.ingest(
        archive.as_("technician-a"), upload(a_file(series), patient_name="Someone^Else")
    )
    assert joined.studies[0].study.patient.name == "Roe^Richard"


@pytest.mark.parametrize(
    "field, value",
    [
        ("modality", "telepathy"),
        ("patient_age", "forty"),
        ("patient_sex", "x"),
        ("urgency", "whenever"),
        ("patient_name", "n" * 201),
    ],
)
async def test_unusable_study_fields_are_refused_before_anything_is_stored(
    archive: Archive, field: str, value: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        await archive.ingest.ingest(archive.as_("technician-a"), upload(a_file(), **{field: value}))

    assert field.split("_")[-1] in refused.value.detail
    assert archive.blobs.keys() == []


async def test_another_centres_study_and_instances_are_not_found(archive: Archive) -> None:
    result = await archive.ingest.ingest(archive.as_("technician-a"), upload(a_file()))
    study = result.studies[0].study
    outsider = archive.as_("manager-b")

    with pytest.raises(NotFound):
        await archive.studies.get(outsider, study.id)
    with pytest.raises(NotFound):
        await archive.studies.get_by_code(outsider, study.code)
    with pytest.raises(NotFound):
        await archive.studies.instances(outsider, study.id)
    with pytest.raises(NotFound):
        await archive.studies.instance(outsider, result.files[0].instance_id, "metadata")
    found, total = await archive.studies.list(outsider, StudyFilter(), Page())
    assert (found, total) == ([], 0)
    assert await archive.studies.get_by_code(archive.as_("radiologist-a"), study.code.lower())


async def test_reads_of_patient_data_are_audited_without_patient_names(archive: Archive) -> None:
    result = await archive.ingest.ingest(
        archive.as_("technician-a"), upload(a_file(patient_name="Secret^Name"))
    )
    reader = archive.as_("radiologist-a")
    study_id = result.studies[0].study.id
    await archive.studies.get(reader, study_id)
    await archive.studies.instance_in_study(reader, study_id, "1")

    events = await archive.world.audit.query(AuditQuery(), Page(limit=1000))
    actions = {e.action for e in events if e.resource_id is None or e.centre_id is not None}
    assert {"study.upload", "study.read", "instance.read"} <= actions
    assert not any("Secret" in (e.detail or "") + e.actor_display for e in events)


async def test_only_admins_delete_studies_and_the_files_go_with_them(archive: Archive) -> None:
    series = a_series()
    kept = await archive.ingest.ingest(archive.as_("technician-a"), upload(a_file()))
    result = await archive.ingest.ingest(
        archive.as_("technician-a"), upload(a_file(series), a_file(series))
    )
    study_id = result.studies[0].study.id

    with pytest.raises(PermissionDenied):
        await archive.studies.delete(archive.as_("manager-a"), study_id)
    with pytest.raises(NotFound):
        await archive.studies.delete(archive.as_("manager-b"), study_id)
    await archive.studies.delete(archive.world.admin, study_id)

    (remaining,) = await archive.studies.instances(archive.world.admin, kept.studies[0].study.id)
    assert archive.blobs.keys() == [remaining.storage_key]
    with pytest.raises(NotFound):
        await archive.studies.get(archive.world.admin, study_id)


async def test_text_and_numbers_a_database_cannot_keep_are_made_storable(
    archive: Archive,
) -> None:
    file = a_file(patient_name="Doe^Jane\x00", instance_number=2**40)

    result = await archive.ingest.ingest(archive.as_("technician-a"), upload(file))

    reader = archive.as_("radiologist-a")
    instance = await archive.studies.instance(reader, result.files[0].instance_id, "metadata")
    assert instance.instance_number is None
    assert instance.header["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
    assert result.studies[0].study.patient.name == "Doe^Jane"
    assert await archive.blobs.get(instance.storage_key) == file.data
