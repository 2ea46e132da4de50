"""A centre that de-identifies at ingest stores no DICOM file that does not say it was
de-identified, whichever way the file came in (the HTTP uploads de-identify on the way; this
guard also holds for ways in that would not)."""

from __future__ import annotations

import msgspec
import pytest

from adapters.system import UuidIdGenerator
from domain.imaging import ImageFormat
from domain.services.centres import UpdateCentre
from domain.services.ingest import IngestService
from domain.services.uploads import IngestStudies, RejectedFile, UploadedFile
from tests.unit.identity_world import World, build_world
from tests.unit.test_study_use_cases import FlakyBlobStore, a_file


def marked(upload: UploadedFile) -> UploadedFile:
    header = {**upload.fields.header, "00120062": {"vr": "CS", "Value": ["YES"]}}
    fields = msgspec.structs.replace(upload.fields, header=header)
    return UploadedFile(file_name=upload.file_name, data=upload.data, fields=fields)


async def deidentifying_world() -> tuple[World, IngestService, FlakyBlobStore]:
    world = await build_world()
    await world.centres.update(
        world.as_("manager-a"), world.centre_a, UpdateCentre(deidentify_at_ingest=True)
    )
    blobs = FlakyBlobStore(fail_on=0)  # never fails; lists what was stored
    ingest = IngestService(
        uow=world.db.unit_of_work,
        blobs=blobs,
        clock=world.clock,
        ids=UuidIdGenerator(),
        auditor=world.auditor,
    )
    return world, ingest, blobs


async def test_a_dicom_file_that_was_not_deidentified_is_refused_and_nothing_stored() -> None:
    world, ingest, blobs = await deidentifying_world()

    with pytest.raises(RejectedFile, match="de-identified"):
        await ingest.ingest(
            world.as_("technician-a"),
            IngestStudies(files=[marked(a_file()), a_file(name="raw.dcm")]),
        )

    assert blobs.keys() == []


async def test_deidentified_files_and_converted_images_are_stored() -> None:
    world, ingest, _ = await deidentifying_world()

    result = await ingest.ingest(
        world.as_("technician-a"),
        IngestStudies(files=[marked(a_file()), a_file(name="p.png", fmt=ImageFormat.PNG)]),
    )

    assert result.stored == 2


async def test_other_centres_store_files_as_received() -> None:
    world, ingest, _ = await deidentifying_world()

    result = await ingest.ingest(world.as_("technician-b"), IngestStudies(files=[a_file()]))

    assert result.stored == 1
