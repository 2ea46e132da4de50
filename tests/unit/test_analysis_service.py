"""The analysis job handler and the reads of results, on in-memory adapters with an echo engine
(bright voxels are lesion) and the real volume reader and SEG writer."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import UTC, datetime
from uuid import uuid4

import msgspec
import nibabel as nib
import numpy as np
import pydicom
import pytest

from adapters.dicom.segmentation import HighdicomSegmentationWriter
from adapters.imaging_volumes import StoredFileVolumeReader
from adapters.memory import MemoryBlobStore
from adapters.system import UuidIdGenerator
from domain.analysis import AnalysisResult
from domain.audit import AuditQuery
from domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from domain.identity import Principal, PrincipalKind, Scope
from domain.jobs import Job, JobStage
from domain.ports.jobs import JobCancelledError
from domain.services.analyses import AnalysisService, segmentation_key
from domain.services.studies import StudyService
from domain.studies import Instance, Series, Study, new_study_code
from domain.values import Page
from tests.fixtures.analysis import (
    ECHO_MANIFEST,
    EchoEngine,
    GivenModels,
    dicom_ct_from_hu,
    sphere_hu,
)
from tests.unit.identity_world import World, build_world

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SPACING = (2.5, 1.2, 1.2)
ORIGIN = (-60.0, -40.0, 100.0)


class RecordingReporter:
    def __init__(self, cancel_at: JobStage | None = None) -> None:
        self.calls: list[tuple[JobStage, float]] = []
        self.cancel_at = cancel_at
        self.inferring = asyncio.Event()

    async def __call__(self, stage: JobStage, progress: float, message: str | None = None) -> None:
        if stage is self.cancel_at:
            raise JobCancelledError("cancelled by a user")
        self.calls.append((stage, progress))
        if stage is JobStage.INFERENCE:
            self.inferring.set()


class Setup(msgspec.Struct, kw_only=True):
    world: World
    service: AnalysisService
    blobs: MemoryBlobStore
    job: Job
    truth: np.ndarray
    hooks: list[AnalysisResult]


async def store_study(
    world: World,
    blobs: MemoryBlobStore,
    files: list[bytes],
    *,
    content_type: str = "application/dicom",
) -> Job:
    study = Study(
        id=uuid4(),
        centre_id=world.centre_a,
        code=new_study_code(),
        study_instance_uid=f"1.2.3.{uuid4().int % 10**12}",
        created_at=T0,
        updated_at=T0,
    )
    series = Series(
        id=uuid4(),
        study_id=study.id,
        centre_id=study.centre_id,
        series_instance_uid=f"1.2.3.4.{uuid4().int % 10**12}",
        created_at=T0,
    )
    async with world.db.unit_of_work() as uow:
        await uow.studies.add(study)
        await uow.series.add(series)
        for number, data in enumerate(files, start=1):
            key = f"centres/{study.centre_id}/studies/{study.id}/{number}.dcm"
            await blobs.put(key, data)
            await uow.instances.add(
                Instance(
                    id=uuid4(),
                    series_id=series.id,
                    study_id=study.id,
                    centre_id=study.centre_id,
                    sop_instance_uid=f"1.2.3.5.{uuid4().int % 10**12}",
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                    instance_number=number,
                    storage_key=key,
                    size_bytes=len(data),
                    content_type=content_type,
                    rows=48,
                    columns=48,
                    created_at=T0,
                )
            )
        job = Job(
            id=uuid4(),
            centre_id=study.centre_id,
            study_id=study.id,
            model_id=ECHO_MANIFEST.id,
            created_at=T0,
            updated_at=T0,
        )
        await uow.jobs.add(job)
        await uow.commit()
    return job


@pytest.fixture
async def setup() -> Setup:
    world = await build_world()
    blobs = MemoryBlobStore()
    hu, truth = sphere_hu((16, 48, 48), SPACING, (7.0, 20.0, 26.0), 9.0)
    # files stored in reverse order: the SEG and the volume must follow positions, not order
    job = await store_study(
        world, blobs, dicom_ct_from_hu(hu, spacing_mm=SPACING, origin_lps=ORIGIN)[::-1]
    )
    hooks: list[AnalysisResult] = []

    async def hook(result: AnalysisResult) -> None:
        hooks.append(result)

    service = AnalysisService(
        uow=world.db.unit_of_work,
        blobs=blobs,
        models=GivenModels(ECHO_MANIFEST),
        engine=EchoEngine(),
        volumes=StoredFileVolumeReader(),
        segmentations=HighdicomSegmentationWriter(),
        clock=world.clock,
        ids=UuidIdGenerator(),
        auditor=world.auditor,
        on_result=[hook],
    )
    return Setup(world=world, service=service, blobs=blobs, job=job, truth=truth, hooks=hooks)


async def test_a_job_stores_one_result_with_the_lesion_and_its_seg(setup):
    reporter = RecordingReporter()

    await setup.service(setup.job, reporter)

    result = await setup.service.result_for_job(setup.world.as_("radiologist-a"), setup.job.id)
    (detection,) = result.detections
    assert detection.metrics is not None
    assert detection.metrics.volume_voxel_mm3 == pytest.approx(4 / 3 * np.pi * 9.0**3, rel=0.2)
    # sphere centre: voxel (z, y, x) = (7, 20, 26) -> LPS (x, y, z)
    expected = (ORIGIN[0] + 26 * 1.2, ORIGIN[1] + 20 * 1.2, ORIGIN[2] + 7 * 2.5)
    assert detection.metrics.centre_of_mass_mm == pytest.approx(expected, abs=1.3)
    assert result.segmentation_key == segmentation_key(setup.job)
    assert detection.mask_key == result.segmentation_key and detection.segment_number == 1
    assert result.input.dimensions == (16, 48, 48)
    assert result.summary.startswith("1 lesion found")
    assert setup.hooks == [result]
    seg = pydicom.dcmread(
        io.BytesIO(await setup.service.mask_for_job(setup.world.as_("radiologist-a"), setup.job.id))
    )
    assert seg.Modality == "SEG"


async def test_progress_is_monotonic_through_every_stage_in_order(setup):
    reporter = RecordingReporter()

    await setup.service(setup.job, reporter)

    values = [p for _, p in reporter.calls]
    assert values == sorted(values) and values[0] >= 0.0 and values[-1] < 1.0
    stages = [stage for stage, _ in reporter.calls]
    order = [JobStage.LOADING, JobStage.PREPROCESSING, JobStage.INFERENCE, JobStage.POSTPROCESSING]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == order


async def test_a_cancelled_job_stops_without_a_result(setup):
    with pytest.raises(JobCancelledError):
        await setup.service(setup.job, RecordingReporter(cancel_at=JobStage.INFERENCE))

    # the handler alone does not end the job (the runner does): it is still unfinished here
    with pytest.raises(Conflict):
        await setup.service.result_for_job(setup.world.admin, setup.job.id)
    assert not await setup.blobs.exists(segmentation_key(setup.job))
    assert setup.hooks == []


async def test_a_second_run_of_the_same_job_keeps_the_first_result_and_reruns_the_hooks(setup):
    await setup.service(setup.job, RecordingReporter())
    first = await setup.service.result_for_job(setup.world.admin, setup.job.id)
    again = RecordingReporter()

    await setup.service(setup.job, again)

    assert await setup.service.result_for_job(setup.world.admin, setup.job.id) == first
    assert again.calls == []
    assert setup.hooks == [first, first]


async def test_an_unknown_model_fails_the_job_permanently(setup):
    job = msgspec.structs.replace(setup.job, model_id="no-such-model")

    with pytest.raises(InvalidInput, match="not installed"):
        await setup.service(job, RecordingReporter())


async def test_a_series_of_another_study_is_not_found(setup):
    job = msgspec.structs.replace(setup.job, series_id=uuid4())

    with pytest.raises(NotFound):
        await setup.service(job, RecordingReporter())


async def test_another_centre_cannot_see_the_result_mask_or_analysis(setup):
    await setup.service(setup.job, RecordingReporter())
    result = await setup.service.result_for_job(setup.world.admin, setup.job.id)
    outsider = setup.world.as_("radiologist-b")

    with pytest.raises(NotFound):
        await setup.service.result_for_job(outsider, setup.job.id)
    with pytest.raises(NotFound):
        await setup.service.mask_for_job(outsider, setup.job.id)
    with pytest.raises(NotFound):
        await setup.service.analysis(outsider, result.id)


async def test_a_key_without_jobs_read_may_not_read_results(setup):
    await setup.service(setup.job, RecordingReporter())
    key = Principal(
        kind=PrincipalKind.API_KEY,
        id=uuid4(),
        role=None,
        centre_id=setup.world.centre_a,
        scopes=frozenset({Scope.STUDIES_READ}),
        display="key",
    )

    with pytest.raises(PermissionDenied):
        await setup.service.result_for_job(key, setup.job.id)


async def test_a_result_without_lesions_has_no_seg(setup):
    hu = np.full((16, 48, 48), -120.0, dtype=np.float32)
    job = await store_study(
        setup.world, setup.blobs, dicom_ct_from_hu(hu, spacing_mm=SPACING, origin_lps=ORIGIN)
    )

    await setup.service(job, RecordingReporter())

    result = await setup.service.result_for_job(setup.world.admin, job.id)
    assert result.detections == () and result.segmentation_key is None
    assert result.summary == "No lesion was found."
    with pytest.raises(NotFound, match="segmentation"):
        await setup.service.mask_for_job(setup.world.admin, job.id)


async def test_reading_a_result_is_audited(setup):
    await setup.service(setup.job, RecordingReporter())
    reader = setup.world.as_("radiologist-a")

    result = await setup.service.result_for_job(reader, setup.job.id)
    await setup.service.analysis(reader, result.id)

    events = await setup.world.audit.query(AuditQuery(), Page(limit=1000))
    reads = [e for e in events if e.action == "analysis.read"]
    assert sorted(e.detail for e in reads) == ["analysis", "result"]
    assert all(e.actor_id == reader.id for e in reads)


class RefusingWriter:
    def write(self, source, volume, labels, segments) -> bytes:
        raise InvalidInput("the source series cannot carry a DICOM SEG: test")


async def test_a_series_that_cannot_carry_a_seg_still_gets_its_result(setup):
    service = AnalysisService(
        uow=setup.world.db.unit_of_work,
        blobs=setup.blobs,
        models=GivenModels(ECHO_MANIFEST),
        engine=EchoEngine(),
        volumes=StoredFileVolumeReader(),
        segmentations=RefusingWriter(),
        clock=setup.world.clock,
        ids=UuidIdGenerator(),
        auditor=setup.world.auditor,
    )

    await service(setup.job, RecordingReporter())

    result = await service.result_for_job(setup.world.admin, setup.job.id)
    assert len(result.detections) == 1 and result.segmentation_key is None
    assert result.detections[0].mask_key is None


class SlowEngine(EchoEngine):
    """An echo engine that takes its time, so a job can be abandoned while it infers."""

    def run(self, manifest, patch):
        time.sleep(0.2)
        return super().run(manifest, patch)


async def test_an_abandoned_job_stops_its_worker_thread_and_stores_nothing(setup):
    engine = SlowEngine()
    service = AnalysisService(
        uow=setup.world.db.unit_of_work,
        blobs=setup.blobs,
        models=GivenModels(ECHO_MANIFEST),
        engine=engine,
        volumes=StoredFileVolumeReader(),
        segmentations=HighdicomSegmentationWriter(),
        clock=setup.world.clock,
        ids=UuidIdGenerator(),
        auditor=setup.world.auditor,
        progress_step=0.0,
    )
    reporter = RecordingReporter()
    running = asyncio.create_task(service(setup.job, reporter))
    await reporter.inferring.wait()

    running.cancel()  # what the runner's heartbeat does when the job was cancelled
    with pytest.raises(asyncio.CancelledError):
        await running
    await asyncio.sleep(0.4)  # the batch in flight finishes
    batches = engine.batches
    await asyncio.sleep(0.6)

    assert engine.batches == batches  # the thread stopped at its next progress report
    with pytest.raises(Conflict):  # no result: the job is still unfinished
        await service.result_for_job(setup.world.admin, setup.job.id)


async def test_a_nifti_study_is_analysed_without_a_seg(setup):
    hu, _ = sphere_hu((16, 48, 48), SPACING, (7.0, 20.0, 26.0), 9.0)
    affine = np.diag([-SPACING[2], -SPACING[1], SPACING[0], 1.0])  # LPS grid as RAS
    data = nib.Nifti1Image(hu.transpose(2, 1, 0), affine).to_bytes()
    job = await store_study(setup.world, setup.blobs, [data], content_type="application/x-nifti")

    await setup.service(job, RecordingReporter())

    result = await setup.service.result_for_job(setup.world.admin, job.id)
    assert result.input.format == "nifti"
    assert len(result.detections) == 1 and result.segmentation_key is None


async def test_deleting_the_study_removes_its_segs(setup):
    await setup.service(setup.job, RecordingReporter())
    studies = StudyService(
        uow=setup.world.db.unit_of_work, blobs=setup.blobs, auditor=setup.world.auditor
    )
    assert await setup.blobs.exists(segmentation_key(setup.job))

    await studies.delete(setup.world.admin, setup.job.study_id)

    assert not await setup.blobs.exists(segmentation_key(setup.job))


async def test_a_result_asked_for_before_the_job_ends_is_a_conflict_naming_its_status(setup):
    with pytest.raises(Conflict, match="pending; its result appears when it completes"):
        await setup.service.result_for_job(setup.world.as_("radiologist-a"), setup.job.id)
    # another centre still learns nothing about the job
    with pytest.raises(NotFound):
        await setup.service.result_for_job(setup.world.as_("radiologist-b"), setup.job.id)


async def test_reading_the_mask_is_audited_as_the_mask_once_it_was_read(setup):
    await setup.service(setup.job, RecordingReporter())
    reader = setup.world.as_("radiologist-a")
    key = segmentation_key(setup.job)
    seg = await setup.blobs.get(key)

    await setup.blobs.delete(key)
    with pytest.raises(NotFound):
        await setup.service.mask_for_job(reader, setup.job.id)
    await setup.blobs.put(key, seg)
    assert await setup.service.mask_for_job(reader, setup.job.id) == seg

    events = await setup.world.audit.query(AuditQuery(), Page(limit=1000))
    assert [e.detail for e in events if e.action == "analysis.read"] == ["mask"]
