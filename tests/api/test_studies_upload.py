"""Uploading studies through ``POST /api/v1/studies``: what a radiology IT team notices.

A series sent shuffled and in pieces ends up as one study and one series whose files read back
byte for byte and assemble into the volume the headers describe; duplicates are stored once;
one bad file refuses the whole request and leaves nothing behind; NIfTI, PNG and JPEG become
one-series studies; study fields sent along are normalised.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import random

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from adapters.dicom import assemble_series, read_dicom
from tests.api.conftest import ServedFactory
from tests.api.identity_fixtures import World, assert_problem, seed_world
from tests.api.studies_helpers import post_studies, stored_keys, study_count
from tests.fixtures.imaging import (
    ct_slice_dataset,
    expected_hu,
    rotation_matrix,
    synthetic_ct_series,
    to_bytes,
)


def named(files: list[bytes], prefix: str = "slice") -> list[tuple[str, bytes]]:
    return [(f"{prefix}-{n:03d}.dcm", data) for n, data in enumerate(files)]


async def read_back(world: World, study_id: str) -> list[bytes]:
    """Every stored file of a study, fetched by its 1-based position."""
    headers = world.a.radiologist.headers
    listing = await world.client.get(f"/api/v1/studies/{study_id}/instances", headers=headers)
    assert listing.status_code == 200
    files = []
    for item in listing.json():
        response = await world.client.get(
            f"/api/v1/studies/{study_id}/instances/{item['position']}", headers=headers
        )
        assert response.status_code == 200
        files.append(response.content)
    return files


@pytest.mark.parametrize("rotation", [None, rotation_matrix(20, -15, 30)], ids=["axial", "oblique"])
async def test_a_shuffled_series_sent_in_two_requests_is_one_study_with_the_headers_geometry(
    world_on_each_database: World, rotation: np.ndarray | None
) -> None:
    world = world_on_each_database
    series = synthetic_ct_series(slices=8, rotation=rotation)
    files = named(series.files)
    random.Random(4).shuffle(files)

    first = await post_studies(world.client, world.a.technician.headers, files[:5])
    second = await post_studies(world.client, world.a.technician.headers, files[5:])

    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    (made,), (joined,) = first.json()["studies"], second.json()["studies"]
    assert made["created"] and not joined["created"]
    assert joined["id"] == made["id"] and joined["code"] == made["code"]
    assert (made["stored"], joined["stored"]) == (5, 3)
    headers = world.a.radiologist.headers
    listed = await world.client.get(f"/api/v1/studies/{made['id']}/series", headers=headers)
    assert [(s["series_instance_uid"], s["instance_count"]) for s in listed.json()] == [
        (series.series_instance_uid, 8)
    ]
    stored = await read_back(world, made["id"])
    assert sorted(stored) == sorted(series.files)
    volume = assemble_series([read_dicom(data) for data in stored])
    assert volume.spacing == pytest.approx((2.5, 0.75, 0.5))
    assert np.allclose(volume.voxels, series.hu)
    for k, position in enumerate(series.positions):
        assert np.allclose(volume.index_to_patient([0, 0, k]), position, atol=1e-4)
    assert np.allclose(volume.direction[:, 0], series.row_cosine, atol=1e-6)
    assert np.allclose(volume.direction[:, 2], series.normal, atol=1e-6)


async def test_the_study_reads_back_with_the_patient_and_study_fields_of_its_headers(
    world: World,
) -> None:
    series = synthetic_ct_series(slices=2)
    response = await post_studies(world.client, world.a.technician.headers, named(series.files))
    study_id = response.json()["studies"][0]["id"]

    study = (
        await world.client.get(f"/api/v1/studies/{study_id}", headers=world.a.manager.headers)
    ).json()

    assert study["study_instance_uid"] == series.study_instance_uid
    assert study["patient"] == {
        "name": "Phantom^Synthetic",
        "patient_id": "SYN-0001",
        "age": "042Y",
        "sex": "O",
        "birth_date": "1984-02-29",
    }
    assert (study["modality"], study["status"], study["urgency"]) == ("ct", "uploaded", "routine")
    assert (study["study_date"], study["accession_number"]) == ("2026-01-15", "ACC-1")
    assert study["uploaded_by"] == str(world.a.technician.id)
    assert study["centre_id"] == str(world.a.id)


async def test_the_same_instance_sent_again_is_stored_once_and_reported_as_a_duplicate(
    world: World,
) -> None:
    series = synthetic_ct_series(slices=3)
    files = named(series.files)
    await post_studies(world.client, world.a.technician.headers, files[:2])

    again = await post_studies(world.client, world.a.manager.headers, [files[0], *files])

    assert again.status_code == 201
    body = again.json()
    assert (body["stored"], body["duplicates"]) == (1, 3)
    assert [f["duplicate"] for f in body["files"]] == [True, True, True, False]
    assert body["files"][0]["instance_id"] == body["files"][1]["instance_id"]
    assert len(stored_keys(world.served.container)) == 3


async def test_two_studies_in_one_request_make_two_studies_with_their_own_codes(
    world: World,
) -> None:
    one, two = synthetic_ct_series(slices=2), synthetic_ct_series(slices=3)

    response = await post_studies(
        world.client, world.a.technician.headers, named(one.files) + named(two.files, "other")
    )

    studies = response.json()["studies"]
    assert sorted(s["stored"] for s in studies) == [2, 3]
    assert len({s["code"] for s in studies}) == 2
    assert all(len(s["code"]) == 8 and s["code"].isalnum() for s in studies)
    for study in studies:
        by_code = await world.client.get(
            f"/api/v1/studies/code/{study['code']}", headers=world.a.radiologist.headers
        )
        assert by_code.json()["id"] == study["id"]


def without_pixel_data() -> bytes:
    series = synthetic_ct_series(slices=1)
    ds = ct_slice_dataset(
        hu=expected_hu(1, 4, 4)[0],
        position=(0.0, 0.0, 0.0),
        orientation=(1, 0, 0, 0, 1, 0),
        pixel_spacing=(1.0, 1.0),
        slice_thickness=1.0,
        instance_number=1,
        study_instance_uid=series.study_instance_uid,
        series_instance_uid=series.series_instance_uid,
        sop_instance_uid="1.2.826.0.1.3680043.8.498.77",
    )
    del ds.PixelData
    return to_bytes(ds)


def without_study_uid() -> bytes:
    ds: Dataset = read_dicom(synthetic_ct_series(slices=1).files[0]).dataset
    del ds.StudyInstanceUID
    return to_bytes(ds)


@pytest.mark.parametrize(
    "bad, reason",
    [
        (b"%PDF-1.7 not an image", "not a supported image"),
        (without_pixel_data(), "no pixel data"),
        (without_study_uid(), "StudyInstanceUID"),
        (synthetic_ct_series(slices=1).files[0][:-40], "truncated"),
        (b"", "empty"),
    ],
    ids=["pdf", "no-pixels", "no-study-uid", "truncated", "empty"],
)
async def test_one_bad_file_among_good_ones_refuses_the_request_naming_it_and_stores_nothing(
    world_on_each_database: World, bad: bytes, reason: str
) -> None:
    world = world_on_each_database
    good = named(synthetic_ct_series(slices=3).files)

    response = await post_studies(
        world.client, world.a.technician.headers, [*good[:2], ("report.pdf", bad), good[2]]
    )

    problem = assert_problem(response, 422)
    assert "report.pdf" in problem["detail"] and reason in problem["detail"]
    assert problem["type"].endswith("/invalid-file")
    assert stored_keys(world.served.container) == []
    assert await study_count(world.served.container) == 0


async def test_an_upload_over_the_size_limit_is_refused_with_413_before_anything_is_stored(
    make_served: ServedFactory,
) -> None:
    world = await seed_world(await make_served(max_upload_bytes="3000"))
    files = named(synthetic_ct_series(slices=4).files)

    response = await post_studies(world.client, world.a.technician.headers, files)

    assert_problem(response, 413)
    assert stored_keys(world.served.container) == []
    assert await study_count(world.served.container) == 0


async def test_a_request_without_files_is_refused(world: World) -> None:
    response = await world.client.post(
        "/api/v1/studies", headers=world.a.technician.headers, data={"patient_name": "X"},
        files={"unrelated": ("notes.txt", b"hello")},
    )  # fmt: skip

    problem = assert_problem(response, 422)
    assert "files" in problem["detail"]


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8)).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    picture = np.zeros((10, 12, 3), dtype=np.uint8)
    picture[..., 0] = 200
    Image.fromarray(picture).save(buffer, format="JPEG")
    return buffer.getvalue()


def nifti_gz_bytes() -> bytes:
    data = (np.arange(4 * 5 * 3).reshape(4, 5, 3) * 10 - 500).astype(np.int16)
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    return gzip.compress(nib.Nifti1Image(data, affine).to_bytes())


@pytest.mark.parametrize(
    "name, data, content_type, frames, suffix",
    [
        ("photo.png", png_bytes(), "image/png", 1, ".png"),
        ("photo.jpg", jpeg_bytes(), "image/jpeg", 1, ".jpg"),
        ("brain.nii.gz", nifti_gz_bytes(), "application/x-nifti", 3, ".nii.gz"),
    ],
    ids=["png", "jpeg", "nifti"],
)
async def test_nifti_png_and_jpeg_become_a_study_with_one_series(
    world: World, name: str, data: bytes, content_type: str, frames: int, suffix: str
) -> None:
    response = await post_studies(
        world.client, world.a.technician.headers, [(name, data)], modality="mri"
    )

    assert response.status_code == 201, response.text
    study_id = response.json()["studies"][0]["id"]
    headers = world.a.radiologist.headers
    study = (await world.client.get(f"/api/v1/studies/{study_id}", headers=headers)).json()
    assert study["modality"] == "mr"
    series = (await world.client.get(f"/api/v1/studies/{study_id}/series", headers=headers)).json()
    assert [(s["instance_count"], s["modality"]) for s in series] == [(1, "mr")]
    stored = await world.client.get(f"/api/v1/studies/{study_id}/instances/1", headers=headers)
    assert stored.content == data
    assert stored.headers["content-type"] == content_type
    assert stored.headers["content-disposition"].endswith(f'{suffix}"')
    (instance,) = (
        await world.client.get(f"/api/v1/studies/{study_id}/instances", headers=headers)
    ).json()
    assert instance["number_of_frames"] == frames
    rendered = await world.client.get(
        f"/api/v1/instances/{instance['id']}/rendered", params={"frame": frames}, headers=headers
    )
    assert rendered.status_code == 200 and rendered.content[:4] == b"\x89PNG"


async def test_study_fields_sent_with_the_files_are_normalised(world: World) -> None:
    response = await post_studies(
        world.client,
        world.a.technician.headers,
        named(synthetic_ct_series(slices=1).files),
        patient_name="Roe^Richard",
        patient_id="MRN-99",
        patient_age="7",
        patient_sex="male",
        modality="x-ray",
        study_type="Chest PA",
        urgency="Urgent",
    )

    study_id = response.json()["studies"][0]["id"]
    study = (
        await world.client.get(f"/api/v1/studies/{study_id}", headers=world.a.technician.headers)
    ).json()
    assert study["patient"]["name"] == "Roe^Richard" and study["patient"]["patient_id"] == "MRN-99"
    assert (study["patient"]["age"], study["patient"]["sex"]) == ("007Y", "M")
    assert (study["modality"], study["description"], study["urgency"]) == (
        "xray",
        "Chest PA",
        "urgent",
    )


@pytest.mark.parametrize(
    "field, value",
    [("modality", "holography"), ("urgency", "later"), ("patient_sex", "?"), ("centre_id", "x")],
)
async def test_unusable_study_fields_are_refused_and_nothing_is_stored(
    world: World, field: str, value: str
) -> None:
    response = await post_studies(
        world.client,
        world.a.technician.headers,
        named(synthetic_ct_series(slices=1).files),
        **{field: value},
    )

    assert response.status_code in (400, 422)
    assert field.split("_")[-1] in assert_problem(response, response.status_code)["detail"] + str(
        response.json().get("errors", "")
    )
    assert stored_keys(world.served.container) == []


async def test_text_with_nul_characters_is_stored_without_them(
    world_on_each_database: World,
) -> None:
    world = world_on_each_database
    ds = read_dicom(synthetic_ct_series(slices=1).files[0]).dataset
    ds.PatientName = "Nul^Padded\x00"
    ds.StudyDescription = "head\x00neck"
    ds.add_new(0x00091010, "LO", "private\x00text")
    data = to_bytes(ds)

    response = await post_studies(world.client, world.a.technician.headers, [("nul.dcm", data)])

    assert response.status_code == 201, response.text
    study_id = response.json()["studies"][0]["id"]
    headers = world.a.radiologist.headers
    study = (await world.client.get(f"/api/v1/studies/{study_id}", headers=headers)).json()
    assert (study["patient"]["name"], study["description"]) == ("Nul^Padded", "headneck")
    stored = await world.client.get(f"/api/v1/studies/{study_id}/instances/1", headers=headers)
    assert stored.content == data  # the file itself is kept as received


async def test_parts_of_one_series_sent_at_the_same_time_still_make_one_study(
    world_on_each_database: World,
) -> None:
    world = world_on_each_database
    series = synthetic_ct_series(slices=12)
    files = named(series.files)
    parts = [files[0:4], files[3:8], files[7:12], files[0:12:3]]  # overlapping

    responses = await asyncio.gather(
        *(post_studies(world.client, world.a.technician.headers, part) for part in parts)
    )

    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    assert len({r.json()["studies"][0]["id"] for r in responses}) == 1
    assert sum(r.json()["stored"] for r in responses) == 12
    assert len(stored_keys(world.served.container)) == 12
    assert await study_count(world.served.container) == 1
