"""The whole analysis path through the real application: upload a synthetic DICOM CT series
with lesions the demo model never saw -> POST /jobs (the in-process runner calls the analysis
handler) -> GET /jobs/{id}/result, /analysis/{id} and /jobs/{id}/mask, whose DICOM SEG must
re-read in pydicom and highdicom on exactly the voxels the pipeline outlined, where the phantom
put its lesions.

The demo model runs through onnxruntime on the CPU. Dice and detection recall of this path are
reported in docs/models.md (run with ``-s`` to see them).
"""

from __future__ import annotations

import asyncio
import io
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import highdicom as hd
import numpy as np
import pydicom
import pytest

from adapters.dicom import assemble_series, read_dicom
from domain.pipeline import analyse_volume
from model_export.synthetic import Phantom, synthetic_ct
from tests.api.conftest import database_of_its_own, serve
from tests.api.identity_fixtures import World, assert_problem, seed_world
from tests.api.studies_helpers import post_studies
from tests.fixtures.analysis import dicom_ct_from_hu

MODEL = "demo-lesion-unet"
SPACING = (2.5, 0.9, 0.9)
"""Not the model's 2 x 1.5 x 1.5 mm: the pipeline resamples."""
SEEDS = (20_261_126, 20_261_127, 20_261_128)
"""Neither training nor held-out evaluation seeds; default phantom settings (1-4 lesions of
radius 4-15 mm), the first three tried, none chosen."""
LARGE_MM = 12.0
FINAL = {"completed", "failed", "cancelled"}


@dataclass
class Case:
    phantom: Phantom
    files: list[bytes]
    study_id: str
    job: dict[str, Any]
    detections: int


@dataclass
class Analysed:
    world: World
    cases: list[Case]

    @property
    def headers(self) -> dict[str, str]:
        return self.world.a.radiologist.headers

    async def get(self, path: str, headers: dict[str, str] | None = None) -> Any:
        return await self.world.client.get(f"/api/v1{path}", headers=headers or self.headers)

    @property
    def with_lesions(self) -> Case:
        """The first case whose analysis found something."""
        return next(case for case in self.cases if case.detections)


async def wait_for(world: World, job_id: str) -> dict[str, Any]:
    for _ in range(2400):
        response = await world.client.get(
            f"/api/v1/jobs/{job_id}", headers=world.a.radiologist.headers
        )
        assert response.status_code == 200, response.text
        if response.json()["status"] in FINAL:
            return dict(response.json())
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


async def analyse(world: World, seed: int) -> Case:
    phantom = synthetic_ct((40, 160, 160), SPACING, seed=seed)
    z, y, x = phantom.origin_mm
    files = dicom_ct_from_hu(phantom.hu, spacing_mm=SPACING, origin_lps=(x, y, z))
    shuffled = list(enumerate(files))
    random.Random(seed).shuffle(shuffled)  # upload order must not matter
    uploaded = await post_studies(
        world.client,
        world.a.technician.headers,
        [(f"slice-{n}.dcm", data) for n, data in shuffled],
    )
    assert uploaded.status_code == 201, uploaded.text
    (study,) = uploaded.json()["studies"]
    started = await world.client.post(
        "/api/v1/jobs",
        headers=world.a.technician.headers,
        json={"study_id": study["id"], "model_id": MODEL},
    )
    assert started.status_code == 201, started.text
    job = await wait_for(world, started.json()["id"])
    result = await world.client.get(
        f"/api/v1/jobs/{job['id']}/result", headers=world.a.radiologist.headers
    )
    detections = len(result.json()["detections"]) if result.status_code == 200 else 0
    return Case(phantom=phantom, files=files, study_id=study["id"], job=job, detections=detections)


@pytest.fixture(scope="module")
async def analysed(
    tmp_path_factory: pytest.TempPathFactory, module_database: str | None
) -> AsyncIterator[Analysed]:
    """The three studies analysed once per module, in memory and on PostgreSQL."""
    async with AsyncExitStack() as stack:
        options = await database_of_its_own(stack, module_database)
        served = await serve(stack, tmp_path_factory.mktemp("analysis") / "data", **options)
        world = await seed_world(served)
        cases = [await analyse(world, seed) for seed in SEEDS]
        yield Analysed(world=world, cases=cases)


async def mask_of(analysed: Analysed, case: Case) -> Any:
    return await analysed.get(f"/jobs/{case.job['id']}/mask")


async def result_of(analysed: Analysed, case: Case) -> dict[str, Any]:
    response = await analysed.get(f"/jobs/{case.job['id']}/result")
    assert response.status_code == 200, response.text
    return dict(response.json())


def seg_by_pydicom(data: bytes, volume) -> np.ndarray:
    """The SEG's label map on the source grid from each frame's ImagePositionPatient (pydicom
    only: nothing of the code under test)."""
    seg = pydicom.dcmread(io.BytesIO(data))
    pixels = seg.pixel_array.reshape(int(seg.NumberOfFrames), seg.Rows, seg.Columns)
    labels = np.zeros(volume.shape, dtype=np.uint16)
    for frame, item in zip(pixels, seg.PerFrameFunctionalGroupsSequence, strict=True):
        position = [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient]
        i, j, k = np.rint(volume.patient_to_index(position)).astype(int)
        assert (i, j) == (0, 0)
        # a SEG of one segment may carry its identification once, in the shared groups
        identification = item.get("SegmentIdentificationSequence") or (
            seg.SharedFunctionalGroupsSequence[0].SegmentIdentificationSequence
        )
        number = int(identification[0].ReferencedSegmentNumber)
        labels[k][frame > 0] = number
    return labels


def seg_by_highdicom(data: bytes, volume) -> np.ndarray:
    """The SEG's label map read through highdicom's own volume, mapped voxel by voxel."""
    hd_volume = hd.seg.segread(io.BytesIO(data)).get_volume(combine_segments=True)
    inverse = np.linalg.inv(hd_volume.affine)
    k, j, i = np.meshgrid(*(np.arange(n) for n in volume.shape), indexing="ij")
    patient = volume.index_to_patient(np.stack([i, j, k], axis=-1).reshape(-1, 3))
    index = np.rint(patient @ inverse[:3, :3].T + inverse[:3, 3]).astype(int)
    inside = np.all((index >= 0) & (index < np.array(hd_volume.array.shape[:3])), axis=1)
    labels = np.zeros(len(index), dtype=np.uint16)
    labels[inside] = hd_volume.array[tuple(index[inside].T)]
    return labels.reshape(volume.shape)


async def test_every_job_completes_and_each_seg_lines_up_with_its_source(analysed):
    for case in analysed.cases:
        assert case.job["status"] == "completed", case.job
        assert case.job["progress"] == 1.0
        result = await result_of(analysed, case)
        mask = await mask_of(analysed, case)
        if not result["detections"]:
            assert result["mask_url"] is None
            assert_problem(mask, 404)
            continue
        assert mask.status_code == 200
        assert mask.headers["content-type"].startswith("application/dicom")
        volume = assemble_series([read_dicom(f) for f in case.files])
        by_pydicom = seg_by_pydicom(mask.content, volume)
        assert np.array_equal(seg_by_highdicom(mask.content, volume), by_pydicom)
        # the same pipeline on the same voxels gives the same label map, voxel by voxel
        container = analysed.world.served.container
        manifest = container.models.get(MODEL)
        assert manifest is not None
        direct = await asyncio.to_thread(analyse_volume, volume, manifest, container.inference)
        assert np.array_equal(by_pydicom, direct.labels)
        # each detection's box, size and centre are those of its segment in the SEG
        assert len(result["detections"]) == int(by_pydicom.max())
        for detection in result["detections"]:
            voxels = np.argwhere(by_pydicom == detection["segment_number"])
            assert detection["voxel_box"]["start"] == voxels.min(axis=0).tolist()
            assert detection["voxel_box"]["stop"] == (voxels.max(axis=0) + 1).tolist()
            assert detection["metrics"]["voxel_count"] == len(voxels)
            centre = volume.index_to_patient(voxels[:, ::-1].mean(axis=0))
            np.testing.assert_allclose(detection["metrics"]["centre_of_mass_mm"], centre, atol=1e-6)


async def test_the_lesions_found_are_where_the_phantoms_put_them(analysed):
    overlap = total = 0
    found: list[tuple[bool, float]] = []
    for case in analysed.cases:
        mask = await mask_of(analysed, case)
        volume = assemble_series([read_dicom(f) for f in case.files])
        predicted = (
            seg_by_pydicom(mask.content, volume) > 0
            if mask.status_code == 200
            else np.zeros(volume.shape, dtype=bool)
        )
        truth = case.phantom.mask
        overlap += int((predicted & truth).sum())
        total += int(predicted.sum() + truth.sum())
        for lesion in case.phantom.lesions:
            inside = case.phantom.lesion_labels == lesion.label
            diameter = 2.0 * float(np.cbrt(np.prod(lesion.semi_axes_mm)))
            found.append((bool((predicted & inside).sum() >= 0.1 * inside.sum()), diameter))
    dice = 2 * overlap / total
    recall = sum(hit for hit, _ in found) / len(found)
    large = [hit for hit, diameter in found if diameter >= LARGE_MM]
    print(
        f"\nwhole path over {len(analysed.cases)} studies: Dice {dice:.3f}, recall {recall:.2f} "
        f"({sum(hit for hit, _ in found)} of {len(found)}), lesions >= {LARGE_MM:.0f} mm "
        f"{sum(large)} of {len(large)}"
    )
    assert dice >= 0.6
    assert sum(large) / len(large) >= 0.6


async def test_the_seg_references_the_source_series(analysed):
    case = analysed.with_lesions
    mask = await mask_of(analysed, case)
    seg = pydicom.dcmread(io.BytesIO(mask.content))
    source = pydicom.dcmread(io.BytesIO(case.files[0]))

    assert seg.Modality == "SEG"
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.FrameOfReferenceUID == source.FrameOfReferenceUID
    referenced = seg.ReferencedSeriesSequence[0]
    assert referenced.SeriesInstanceUID == source.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} == {
        pydicom.dcmread(io.BytesIO(f)).SOPInstanceUID for f in case.files
    }


async def test_the_analysis_view_has_lesions_quality_and_recommendations(analysed):
    case = analysed.with_lesions
    result = await result_of(analysed, case)

    response = await analysed.get(f"/analysis/{result['id']}")

    assert response.status_code == 200, response.text
    view = response.json()
    assert view["analysis_id"] == result["id"] and view["job_id"] == case.job["id"]
    assert view["model"] == {"id": MODEL, "version": "0.1.0"}
    assert view["lesion_count"] == len(view["lesions"]) == len(result["detections"])
    lesion = view["lesions"][0]
    assert set(lesion) >= {"id", "region", "location", "coordinates", "confidence", "size"}
    assert set(lesion["size"]) == {
        "volume_mm3",
        "surface_area_mm2",
        "diameter_mm",
        "sphericity",
        "elongation",
        "compactness",
    }
    assert lesion["size"]["volume_mm3"] == result["detections"][0]["metrics"]["volume_mesh_mm3"]
    assert view["quality_assessment"]["rating"] in {"good", "fair", "poor"}
    assert view["recommendations"] and view["mask_url"].endswith("/mask")


async def test_the_ai_report_is_drafted_from_the_result(analysed):
    response = await analysed.get(f"/studies/{analysed.cases[0].study_id}/ai-report")

    assert response.status_code == 200, response.text


async def test_another_centre_sees_neither_result_nor_mask_nor_analysis(analysed):
    outsider = analysed.world.b.radiologist.headers
    case = analysed.with_lesions
    result = await result_of(analysed, case)

    for path in (
        f"/jobs/{case.job['id']}/result",
        f"/jobs/{case.job['id']}/mask",
        f"/analysis/{result['id']}",
    ):
        assert_problem(await analysed.get(path, outsider), 404)


async def test_unknown_ids_are_problem_documents(analysed):
    missing = "0190f1b0-0000-7000-8000-000000000000"

    for path in (f"/jobs/{missing}/result", f"/jobs/{missing}/mask", f"/analysis/{missing}"):
        assert_problem(await analysed.get(path), 404)
    assert_problem(await analysed.get("/analysis/not-a-uuid"), 404)
