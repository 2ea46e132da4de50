"""Loading one series' stored files for a job, and choosing the series of a study-level job."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from adapters.imaging_volumes import StoredFileVolumeReader
from adapters.memory import MemoryBlobStore, MemoryDatabase
from domain.errors import InvalidInput, NotFound
from domain.services.series_files import analysis_series_id, load_series
from domain.studies import Instance, Series
from tests.fixtures.imaging import synthetic_ct_series
from tests.unit.factories import T0, a_study

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


async def add_series(
    db: MemoryDatabase,
    blobs: MemoryBlobStore,
    study_id: UUID,
    centre_id: UUID,
    files: list[bytes],
    *,
    number: int,
    sop_class_uid: str = "1.2.840.10008.5.1.4.1.1.2",
    content_type: str = "application/dicom",
    rows: int | None = 12,
) -> Series:
    series = Series(
        id=uuid4(),
        study_id=study_id,
        centre_id=centre_id,
        series_instance_uid=f"1.2.3.{number}.{uuid4().int % 10**9}",
        series_number=number,
        created_at=T0,
    )
    async with db.unit_of_work() as uow:
        await uow.series.add(series)
        # stored in reverse, numbered in slice order: the loader must not rely on insert order
        for index in reversed(range(len(files))):
            instance = Instance(
                id=uuid4(),
                series_id=series.id,
                study_id=study_id,
                centre_id=centre_id,
                sop_instance_uid=f"1.2.3.{number}.{index}.{uuid4().int % 10**9}",
                sop_class_uid=sop_class_uid,
                instance_number=index + 1,
                storage_key=f"studies/{study_id}/{series.id}/{index}.dcm",
                size_bytes=len(files[index]),
                content_type=content_type,
                rows=rows,
                columns=rows,
                created_at=T0,
            )
            await blobs.put(instance.storage_key, files[index])
            await uow.instances.add(instance)
        await uow.commit()
    return series


@pytest.fixture
async def archive() -> tuple[MemoryDatabase, MemoryBlobStore, UUID, UUID]:
    db, blobs = MemoryDatabase(), MemoryBlobStore()
    study = a_study()
    async with db.unit_of_work() as uow:
        await uow.studies.add(study)
        await uow.commit()
    return db, blobs, study.id, study.centre_id


async def test_the_loaded_files_make_the_series_volume(archive):
    db, blobs, study_id, centre_id = archive
    ct = synthetic_ct_series(slices=5)
    series = await add_series(db, blobs, study_id, centre_id, ct.files, number=1)

    loaded, instances, files = await load_series(db.unit_of_work, blobs, series.id)

    assert loaded.id == series.id
    assert [i.instance_number for i in instances] == [1, 2, 3, 4, 5]
    assert [f.data for f in files] == ct.files
    volume = StoredFileVolumeReader().read_volume(files)
    assert volume.shape == ct.hu.shape


async def test_a_study_level_job_reads_the_image_series_with_most_instances(archive):
    db, blobs, study_id, centre_id = archive
    scout = synthetic_ct_series(slices=1)
    axial = synthetic_ct_series(slices=4)
    await add_series(db, blobs, study_id, centre_id, scout.files, number=1)
    chosen = await add_series(db, blobs, study_id, centre_id, axial.files, number=2)
    await add_series(
        db, blobs, study_id, centre_id, [b"x"] * 6, number=3, sop_class_uid=SEG_STORAGE, rows=None
    )

    assert await analysis_series_id(db.unit_of_work, study_id) == chosen.id


async def test_a_study_without_images_has_no_series_to_analyse(archive):
    db, blobs, study_id, centre_id = archive
    await add_series(
        db, blobs, study_id, centre_id, [b"x"], number=1, sop_class_uid=SEG_STORAGE, rows=None
    )

    with pytest.raises(NotFound):
        await analysis_series_id(db.unit_of_work, study_id)


async def test_an_unknown_series_is_not_found(archive):
    db, blobs, _, _ = archive

    with pytest.raises(NotFound):
        await load_series(db.unit_of_work, blobs, uuid4())


async def test_a_lost_stored_file_is_not_found(archive):
    db, blobs, study_id, centre_id = archive
    ct = synthetic_ct_series(slices=2)
    series = await add_series(db, blobs, study_id, centre_id, ct.files, number=1)
    async with db.unit_of_work() as uow:
        first = (await uow.instances.list_for_series(series.id))[0]
    await blobs.delete(first.storage_key)

    with pytest.raises(NotFound, match="stored file"):
        await load_series(db.unit_of_work, blobs, series.id)


async def test_an_instance_stored_in_no_image_format_is_refused(archive):
    db, blobs, study_id, centre_id = archive
    series = await add_series(
        db, blobs, study_id, centre_id, [b"%PDF"], number=1, content_type="application/pdf"
    )

    with pytest.raises(InvalidInput, match="application/pdf"):
        await load_series(db.unit_of_work, blobs, series.id)
