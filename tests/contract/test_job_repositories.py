"""Contract: jobs are durable and recoverable; each job has at most one result."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.analysis import Detection, PatientBox, ProcessingTimes, VoxelBox
from domain.errors import ConcurrentModification, Conflict
from domain.jobs import JobStage, JobStatus
from domain.metrics import TumorMetrics
from domain.ports import JobFilter, UnitOfWorkFactory
from domain.values import Page
from tests.contract.conftest import Make, replace, store


async def test_a_job_keeps_every_field_through_its_lifecycle(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    series = make.series(study)
    job = make.job(study, series_id=series.id, created_by=make.id(), max_attempts=5)
    await store(uow_factory, centre, study, series, job)

    at = make.now()
    running = job.enqueue(at=at).start(at=at, lease_until=at + timedelta(minutes=5))
    running = running.report_progress(
        stage=JobStage.INFERENCE, progress=0.5, at=at, message="window 3 of 6"
    )
    async with uow_factory() as uow:
        stored = await uow.jobs.update(running)
        await uow.commit()

    async with uow_factory() as uow:
        assert await uow.jobs.get(job.id) == stored
    assert stored.version == 2
    assert stored.stage is JobStage.INFERENCE and stored.attempts == 1


async def test_a_stale_job_update_is_refused(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    study = make.study(centre)
    job = make.job(study)
    await store(uow_factory, centre, study, job)

    async with uow_factory() as uow:
        await uow.jobs.update(job.enqueue(at=make.now()))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(ConcurrentModification):
            await uow.jobs.update(job.cancel(at=make.now()))
        current = await uow.jobs.get(job.id)
    assert current is not None and current.status is JobStatus.QUEUED


async def test_jobs_list_newest_first_with_filters(uow_factory: UnitOfWorkFactory, make: Make):
    a, b = make.centre(), make.centre()
    study_a, study_b = make.study(a), make.study(b)
    user = make.id()
    oldest = make.job(study_a, created_by=user)
    other_model = make.job(study_a, model_id="other-model")
    in_b = make.job(study_b, created_by=user)
    newest = make.job(study_a, status=JobStatus.QUEUED)
    await store(uow_factory, a, b, study_a, study_b, oldest, other_model, in_b, newest)

    async def ids(where: JobFilter, page: Page | None = None) -> list:
        async with uow_factory() as uow:
            return [j.id for j in await uow.jobs.list(where, page or Page())]

    assert await ids(JobFilter()) == [newest.id, in_b.id, other_model.id, oldest.id]
    assert await ids(JobFilter(centre_id=a.id)) == [newest.id, other_model.id, oldest.id]
    assert await ids(JobFilter(status=JobStatus.QUEUED)) == [newest.id]
    assert await ids(JobFilter(study_id=study_b.id)) == [in_b.id]
    assert await ids(JobFilter(created_by=user)) == [in_b.id, oldest.id]
    assert await ids(JobFilter(model_id="other-model")) == [other_model.id]
    assert await ids(JobFilter(), Page(skip=1, limit=2)) == [in_b.id, other_model.id]


async def test_dead_letters_are_failed_jobs_that_used_every_attempt(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    exhausted = make.job(study, status=JobStatus.FAILED, attempts=3, max_attempts=3)
    refused_at_once = make.job(study, status=JobStatus.FAILED, attempts=1, max_attempts=3)
    waiting = make.job(study, status=JobStatus.QUEUED, attempts=3, max_attempts=3)
    await store(uow_factory, centre, study, exhausted, refused_at_once, waiting)

    async with uow_factory() as uow:
        dead = await uow.jobs.list(JobFilter(dead_letter=True), Page())
        alive = await uow.jobs.list(JobFilter(dead_letter=False), Page())

    assert [j.id for j in dead] == [exhausted.id]
    assert {j.id for j in alive} == {refused_at_once.id, waiting.id}


async def test_recoverable_jobs_are_waiting_ones_and_running_ones_with_expired_leases(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    now = make.now() + timedelta(days=1)
    pending = make.job(study)
    queued = make.job(study, status=JobStatus.QUEUED, queued_at=make.now())
    lease_lost = make.job(
        study, status=JobStatus.RUNNING, lease_expires_at=now - timedelta(seconds=1)
    )
    lease_held = make.job(
        study, status=JobStatus.RUNNING, lease_expires_at=now + timedelta(minutes=5)
    )
    done = [
        make.job(study, status=status)
        for status in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
    ]
    await store(uow_factory, centre, study, pending, queued, lease_lost, lease_held, *done)

    async with uow_factory() as uow:
        recoverable = await uow.jobs.list_recoverable(now, 100)
        first_two = await uow.jobs.list_recoverable(now, 2)

    assert [j.id for j in recoverable] == [pending.id, queued.id, lease_lost.id]
    assert [j.id for j in first_two] == [pending.id, queued.id]


async def test_a_result_keeps_its_detections_and_metrics(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study = make.study(centre)
    job = make.job(study)
    metrics = TumorMetrics(
        volume_mesh_mm3=523.6,
        volume_voxel_mm3=530.1,
        surface_area_mm2=314.2,
        surface_to_volume_ratio=0.6,
        compactness_1=0.03,
        compactness_2=0.98,
        spherical_disproportion=1.01,
        sphericity=0.99,
        asphericity=0.01,
        centre_of_mass_shift_mm=0.2,
        maximum_3d_diameter_mm=10.1,
        major_axis_length_mm=10.0,
        minor_axis_length_mm=9.5,
        least_axis_length_mm=9.0,
        elongation=0.95,
        flatness=0.9,
        centre_of_mass_mm=(12.5, -40.25, 101.0),
    )
    detection = Detection(
        label="tumor",
        confidence=0.875,
        voxel_box=VoxelBox(start=(0, 1, 2), stop=(4, 5, 6)),
        patient_box=PatientBox(minimum_mm=(0.0, 0.7, 1.4), maximum_mm=(10.0, 3.5, 4.2)),
        metrics=metrics,
    )
    result = make.result(
        job,
        detections=(detection, replace(detection, label="cyst", metrics=None)),
        image_quality_score=0.8,
        segmentation_key="seg/1.dcm",
        times=ProcessingTimes(preprocessing_s=0.25, inference_s=1.5, postprocessing_s=0.125),
    )
    await store(uow_factory, centre, study, job, result)

    async with uow_factory() as uow:
        assert await uow.results.get(result.id) == result
        assert await uow.results.get_for_job(job.id) == result
        assert await uow.results.get_for_job(make.id()) is None


async def test_a_second_result_for_a_job_is_a_conflict(uow_factory: UnitOfWorkFactory, make: Make):
    centre = make.centre()
    study = make.study(centre)
    job = make.job(study)
    await store(uow_factory, centre, study, job, make.result(job))

    async with uow_factory() as uow:
        with pytest.raises(Conflict):
            await uow.results.add(make.result(job))


async def test_the_latest_result_of_a_study_is_the_newest(
    uow_factory: UnitOfWorkFactory, make: Make
):
    centre = make.centre()
    study, other = make.study(centre), make.study(centre)
    first_job, second_job, other_job = make.job(study), make.job(study), make.job(other)
    first, second = make.result(first_job), make.result(second_job)
    await store(uow_factory, centre, study, other, first_job, second_job, other_job, first, second)

    async with uow_factory() as uow:
        assert await uow.results.latest_for_study(study.id) == second
        assert await uow.results.latest_for_study(other.id) is None
