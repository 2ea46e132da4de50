"""Helpers for the workflow, report and billing API tests: a stored study, an analysis result."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx

from domain.analysis import AnalysisResult, Detection, InputMetadata, PatientBox, VoxelBox
from domain.jobs import Job, JobStatus
from domain.metrics import TumorMetrics
from entrypoints.bootstrap import Container
from tests.api.identity_fixtures import Member
from tests.api.studies_helpers import post_studies
from tests.fixtures.imaging import synthetic_ct_series


async def upload_ct(client: httpx.AsyncClient, technician: Member, **fields: str) -> UUID:
    """A one-slice CT study uploaded by ``technician`` through ``POST /studies``; its id.

    Not ``POST /upload``: with one model installed that also starts an analysis, whose AI
    draft would race with the results these tests store themselves.
    """
    data = synthetic_ct_series(slices=1).files[0]
    response = await post_studies(client, technician.headers, [("ct.dcm", data)], **fields)
    assert response.status_code == 201, response.text
    return UUID(response.json()["studies"][0]["id"])


def lesion_metrics(volume_mm3: float, diameter_mm: float) -> TumorMetrics:
    return TumorMetrics(
        volume_mesh_mm3=volume_mm3,
        volume_voxel_mm3=volume_mm3 * 1.02,
        surface_area_mm2=600.0,
        surface_to_volume_ratio=600.0 / volume_mm3,
        compactness_1=0.04,
        compactness_2=0.8,
        spherical_disproportion=1.1,
        sphericity=0.9,
        asphericity=0.1,
        centre_of_mass_shift_mm=0.2,
        maximum_3d_diameter_mm=diameter_mm,
        major_axis_length_mm=diameter_mm * 0.9,
        minor_axis_length_mm=diameter_mm * 0.8,
        least_axis_length_mm=diameter_mm * 0.7,
        elongation=0.89,
        flatness=0.78,
        centre_of_mass_mm=(-31.5, 12.25, 48.0),
    )


def a_detection(confidence: float = 0.93, volume_mm3: float = 2144.7) -> Detection:
    return Detection(
        label="lesion",
        confidence=confidence,
        voxel_box=VoxelBox(start=(3, 10, 12), stop=(9, 26, 30)),
        patient_box=PatientBox(minimum_mm=(-40.0, 4.0, 40.0), maximum_mm=(-23.0, 20.5, 56.0)),
        metrics=lesion_metrics(volume_mm3, 18.4),
    )


async def stored_result(
    container: Container, study_id: UUID, detections: tuple[Detection, ...] = ()
) -> AnalysisResult:
    """A completed job and its result for the study, stored as the analysis service would."""
    async with container.uow_factory() as uow:
        study = await uow.studies.get(study_id)
        assert study is not None
        now = container.clock.now()
        job = Job(
            id=container.ids.new_id(),
            centre_id=study.centre_id,
            study_id=study.id,
            model_id="demo-lesion-unet",
            status=JobStatus.COMPLETED,
            progress=1.0,
            created_at=now,
            updated_at=now,
        )
        result = AnalysisResult(
            id=container.ids.new_id(),
            job_id=job.id,
            study_id=study.id,
            centre_id=study.centre_id,
            model_id="demo-lesion-unet",
            model_version="0.1.0",
            detections=detections,
            summary=f"{len(detections)} lesion(s)",
            overall_confidence=0.91 if detections else 0.97,
            image_quality_score=0.82,
            input=InputMetadata(
                format="dicom", dimensions=(12, 64, 64), voxel_spacing_mm=(2.5, 0.75, 0.5)
            ),
            created_at=now,
        )
        await uow.jobs.add(job)
        await uow.results.add(result)
        await uow.commit()
    return result


async def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json()
