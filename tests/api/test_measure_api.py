"""``POST /api/v1/measure``: a study plus a DICOM SEG or RTSTRUCT drawn on one of its series
answers the IBSI metrics of each structure, measured with the series' real geometry; files
that are no segmentation of the study, and other centres' studies, change nothing and get a
problem document."""

from __future__ import annotations

import math
import random

import pytest

from adapters.dicom import assemble_series, read_dicom
from adapters.dicom.segmentation import HighdicomSegmentationWriter
from domain.ports.segmentation import Segment, SegmentationSource
from tests.api.identity_fixtures import World, assert_problem
from tests.api.studies_helpers import post_studies
from tests.fixtures.imaging import SyntheticSeries, synthetic_ct_series
from tests.fixtures.segmentation import rtstruct, sphere_contours, sphere_mask, volume_centre

RADIUS_MM = 9.0
SEED_NAMES = {"volume_mm3", "surface_area_mm2", "diameter_mm", "sphericity", "elongation"}


def ct_series() -> SyntheticSeries:
    return synthetic_ct_series(
        slices=24, rows=34, columns=32, pixel_spacing=(0.75, 0.8), slice_spacing=1.25
    )


async def upload_study(world: World, series: SyntheticSeries) -> str:
    files = list(series.files)
    random.Random(5).shuffle(files)
    response = await post_studies(
        world.client,
        world.a.technician.headers,
        [(f"slice-{n}.dcm", data) for n, data in enumerate(files)],
    )
    assert response.status_code == 201, response.text
    (study,) = response.json()["studies"]
    return str(study["id"])


def sphere_rtstruct(series: SyntheticSeries) -> bytes:
    volume = assemble_series([read_dicom(f) for f in series.files])
    return rtstruct(series, {"GTV": sphere_contours(volume_centre(volume), RADIUS_MM, volume)})


def sphere_seg(series: SyntheticSeries) -> bytes:
    volume = assemble_series([read_dicom(f) for f in series.files])
    labels = sphere_mask(volume_centre(volume), RADIUS_MM, volume).astype("uint16")
    source = SegmentationSource(
        files=tuple(series.files), algorithm_name="t", algorithm_version="1"
    )
    return HighdicomSegmentationWriter().write(
        source, volume, labels, [Segment(number=1, label="lesion A")]
    )


async def measure(world: World, headers, study_id: str | None, data: bytes | None):
    fields = {} if study_id is None else {"study_id": study_id}
    files = None if data is None else {"file": ("seg.dcm", data, "application/dicom")}
    return await world.client.post("/api/v1/measure", headers=headers, data=fields, files=files)


@pytest.mark.parametrize(
    ("make_file", "label"), [(sphere_rtstruct, "GTV"), (sphere_seg, "lesion A")]
)
async def test_a_sphere_is_measured_within_a_few_percent_of_its_true_size(
    world_on_each_database: World, make_file, label
):
    world = world_on_each_database
    series = ct_series()
    study_id = await upload_study(world, series)

    response = await measure(world, world.a.radiologist.headers, study_id, make_file(series))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["study_id"] == study_id
    assert body["dimensions"] == [24, 34, 32]
    assert body["voxel_spacing_mm"] == pytest.approx([1.25, 0.75, 0.8])
    (structure,) = body["structures"]
    assert structure["label"] == label
    metrics = structure["metrics"]
    assert set(metrics) >= SEED_NAMES and "compactness" in metrics
    assert metrics["volume_mm3"] == pytest.approx(4 / 3 * math.pi * RADIUS_MM**3, rel=0.04)
    assert metrics["diameter_mm"] == pytest.approx(2 * RADIUS_MM, rel=0.08)
    assert metrics["sphericity"] > 0.8
    assert structure["region"] == "central"
    assert structure["voxel_count"] > 1000
    series_list = await world.client.get(
        f"/api/v1/studies/{study_id}/series", headers=world.a.radiologist.headers
    )
    assert body["series_id"] in {s["id"] for s in series_list.json()}


async def test_another_centres_study_is_not_found(world: World):
    series = ct_series()
    study_id = await upload_study(world, series)

    response = await measure(world, world.b.manager.headers, study_id, sphere_rtstruct(series))

    assert_problem(response, 404)


async def test_a_segmentation_of_a_series_outside_the_study_is_refused(world: World):
    study_id = await upload_study(world, ct_series())

    response = await measure(world, world.a.manager.headers, study_id, sphere_rtstruct(ct_series()))

    assert "another series" in assert_problem(response, 422)["detail"]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"%PDF-1.7 not a segmentation", "not a"),
        ("image", "neither a DICOM SEG nor an RT Structure Set"),
        ("empty-roi", "no voxel"),
    ],
)
async def test_files_that_are_no_segmentation_of_the_study_are_refused(world: World, data, reason):
    series = ct_series()
    study_id = await upload_study(world, series)
    if data == "image":
        data = series.files[0]
    elif data == "empty-roi":
        data = rtstruct(series, {"nothing": []})

    response = await measure(world, world.a.manager.headers, study_id, data)

    assert reason in assert_problem(response, 422)["detail"]


async def test_the_study_and_the_file_are_both_required(world: World):
    series = ct_series()
    study_id = await upload_study(world, series)

    no_study = await measure(world, world.a.manager.headers, None, sphere_rtstruct(series))
    no_file = await world.client.post(
        "/api/v1/measure",
        headers=world.a.manager.headers,
        data={"study_id": study_id},
        files={"notes": ("notes.txt", b"a multipart body without 'file'", "text/plain")},
    )

    assert "study_id" in assert_problem(no_study, 422)["detail"]
    assert "file" in assert_problem(no_file, 422)["detail"]
