"""De-identification and export over HTTP: ``POST /studies/{id}/anonymize``,
``POST /anonymize/batch``, ``POST /export``, and de-identification at ingest for a centre.

Each answers a ZIP; another centre's study or image is 404 (for the whole export: nothing
partial); bad options are a 4xx problem; stored files never change.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.data import get_testdata_files

from tests.api.conftest import serve
from tests.api.identity_fixtures import World, assert_problem, create_key, seed_world
from tests.api.studies_helpers import multipart, post_studies, stored_keys
from tests.fixtures.imaging import expected_hu, synthetic_ct_series

REPORT = "deidentification-report.json"


def unzip(response: httpx.Response) -> dict[str, bytes]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/zip")
    assert "attachment" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


async def upload_ct(world: World, slices: int = 3) -> dict[str, Any]:
    series = synthetic_ct_series(slices=slices)
    files = [(f"Phantom_Synthetic_{n}.dcm", data) for n, data in enumerate(series.files)]
    response = await post_studies(world.client, world.a.technician.headers, files)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return {
        "series": series,
        "study_id": body["studies"][0]["id"],
        "instance_ids": [f["instance_id"] for f in body["files"]],
    }


# -- a stored study ----------------------------------------------------------------------------


async def test_a_study_is_answered_deidentified_with_its_report(world: World) -> None:
    uploaded = await upload_ct(world)
    series = uploaded["series"]

    response = await world.client.post(
        f"/api/v1/studies/{uploaded['study_id']}/anonymize",
        headers=world.a.radiologist.headers,
        json={},
    )

    files = unzip(response)
    dicoms = sorted(name for name in files if name.endswith(".dcm"))
    assert dicoms == ["001/00001.dcm", "001/00002.dcm", "001/00003.dcm"]
    datasets = [dcmread(io.BytesIO(files[name])) for name in dicoms]
    for ds, data in zip(datasets, (files[n] for n in dicoms), strict=True):
        assert b"Phantom" not in data and b"SYN-0001" not in data
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert datasets[0].StudyInstanceUID != series.study_instance_uid
    assert not {ds.SOPInstanceUID for ds in datasets} & set(series.sop_instance_uids)
    report = json.loads(files[REPORT])
    assert report["files"] == 3
    assert [c["code_value"] for c in report["method_codes"]] == ["113100"]
    names = {(c["keyword"], c["action"]): c["count"] for c in report["changes"]}
    assert names[("PatientName", "Z")] == 3
    assert b"Phantom" not in files[REPORT]


async def test_the_stored_study_is_not_changed(world: World) -> None:
    uploaded = await upload_ct(world, slices=1)
    path = f"/api/v1/studies/{uploaded['study_id']}"

    await world.client.post(f"{path}/anonymize", headers=world.a.technician.headers)

    stored = await world.client.get(f"{path}/instances/1", headers=world.a.technician.headers)
    assert stored.content == uploaded["series"].files[0]


async def test_date_and_uid_options_apply_to_the_study(world: World) -> None:
    uploaded = await upload_ct(world, slices=1)

    response = await world.client.post(
        f"/api/v1/studies/{uploaded['study_id']}/anonymize",
        headers=world.a.key.headers,
        json={"dates": "shift", "date_shift_days": 10, "retain_uids": True},
    )

    files = unzip(response)
    ds = dcmread(io.BytesIO(files["001/00001.dcm"]))
    assert ds.StudyDate == "20260125"
    assert ds.StudyInstanceUID == uploaded["series"].study_instance_uid
    codes = [c["code_value"] for c in json.loads(files[REPORT])["method_codes"]]
    assert codes == ["113100", "113107", "113110"]


@pytest.mark.parametrize(
    "body",
    [
        {"dates": "sideways"},
        {"dates": "keep", "date_shift_days": 3},
        {"dates": "shift", "date_shift_days": 99_999},
        {"retain_uids": "perhaps"},
        {"unknown": 1},
    ],
)
async def test_bad_options_are_a_problem(world: World, body: dict[str, Any]) -> None:
    uploaded = await upload_ct(world, slices=1)

    response = await world.client.post(
        f"/api/v1/studies/{uploaded['study_id']}/anonymize",
        headers=world.a.technician.headers,
        json=body,
    )

    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)


@pytest.mark.parametrize("who", ["technician", "manager", "key"])
async def test_another_centres_study_is_not_found(world: World, who: str) -> None:
    uploaded = await upload_ct(world, slices=1)
    headers = getattr(world.b, who).headers

    response = await world.client.post(
        f"/api/v1/studies/{uploaded['study_id']}/anonymize", headers=headers
    )

    assert_problem(response, 404)


# -- a batch -----------------------------------------------------------------------------------


async def test_a_batch_is_deidentified_in_one_run_and_nothing_is_stored(world: World) -> None:
    series = synthetic_ct_series(slices=2)
    before = stored_keys(world.served.container)
    files = multipart([(f"Smith_John_{n}.dcm", d) for n, d in enumerate(series.files)])

    response = await world.client.post(
        "/api/v1/anonymize/batch",
        headers=world.a.technician.headers,
        files=files,
        data={"dates": "keep"},
    )

    out = unzip(response)
    assert sorted(out) == ["00001.dcm", "00002.dcm", REPORT]
    datasets = [dcmread(io.BytesIO(out[name])) for name in ("00001.dcm", "00002.dcm")]
    assert datasets[0].StudyInstanceUID == datasets[1].StudyInstanceUID
    assert datasets[0].StudyInstanceUID != series.study_instance_uid
    assert datasets[0].StudyDate == "20260115"
    assert b"Smith" not in response.content
    assert stored_keys(world.served.container) == before


async def test_a_batch_with_a_file_that_is_not_dicom_is_refused_naming_it(world: World) -> None:
    series = synthetic_ct_series(slices=1)
    files = multipart([("good.dcm", series.files[0]), ("notes.txt", b"hello")])

    response = await world.client.post(
        "/api/v1/anonymize/batch", headers=world.a.technician.headers, files=files
    )

    problem = assert_problem(response, 422)
    assert "notes.txt" in problem["detail"]


async def test_a_batch_with_bad_options_or_no_files_is_refused(world: World) -> None:
    series = synthetic_ct_series(slices=1)

    bad_dates = await world.client.post(
        "/api/v1/anonymize/batch",
        headers=world.a.technician.headers,
        files=multipart([("a.dcm", series.files[0])]),
        data={"dates": "later"},
    )
    empty = await world.client.post(
        "/api/v1/anonymize/batch",
        headers=world.a.technician.headers,
        files=[("other", ("x", b"", "text/plain"))],
    )

    assert_problem(bad_dates, 422)
    assert 400 <= empty.status_code < 500


async def test_a_batch_needs_credentials(world: World) -> None:
    response = await world.client.post(
        "/api/v1/anonymize/batch", files=multipart([("a.dcm", b"x")])
    )

    assert_problem(response, 401)


# -- export ------------------------------------------------------------------------------------


async def test_images_export_as_png_with_metadata(world: World) -> None:
    uploaded = await upload_ct(world, slices=2)
    ids = uploaded["instance_ids"]

    response = await world.client.post(
        "/api/v1/export",
        headers=world.a.radiologist.headers,
        json={"image_ids": ids, "format": "png", "include_metadata": True},
    )

    files = unzip(response)
    assert sorted(files) == sorted(
        [f"{ids[0]}/frame-0001.png", f"{ids[0]}.json", f"{ids[1]}/frame-0001.png", f"{ids[1]}.json"]
    )
    with Image.open(io.BytesIO(files[f"{ids[0]}/frame-0001.png"])) as picture:
        assert picture.format == "PNG" and picture.size == (10, 12)
    metadata = json.loads(files[f"{ids[1]}.json"])
    assert metadata["image_id"] == ids[1]
    assert metadata["rows"] == 12 and metadata["columns"] == 10
    assert metadata["windows"][0]["center"] == 40.0  # the header's window
    assert metadata["header"]["00100010"]["Value"][0]["Alphabetic"] == "Phantom^Synthetic"


async def test_images_export_as_npy_in_hounsfield_units(world: World) -> None:
    uploaded = await upload_ct(world, slices=2)
    second = uploaded["instance_ids"][1]

    response = await world.client.post(
        "/api/v1/export",
        headers=world.a.key.headers,
        json={"image_ids": [second], "format": "npy"},
    )

    files = unzip(response)
    assert list(files) == [f"{second}.npy"]
    array = np.load(io.BytesIO(files[f"{second}.npy"]), allow_pickle=False)
    assert array.shape == (1, 12, 10)
    np.testing.assert_array_equal(array[0], expected_hu(2, 12, 10)[1])


async def test_a_requested_window_is_used_for_jpeg(world: World) -> None:
    uploaded = await upload_ct(world, slices=1)
    image_id = uploaded["instance_ids"][0]

    response = await world.client.post(
        "/api/v1/export",
        headers=world.a.technician.headers,
        json={
            "image_ids": [image_id],
            "format": "jpeg",
            "window": {"width": 1500, "level": -600},
            "include_metadata": True,
        },
    )

    files = unzip(response)
    with Image.open(io.BytesIO(files[f"{image_id}/frame-0001.jpg"])) as picture:
        assert picture.format == "JPEG"
    window = json.loads(files[f"{image_id}.json"])["windows"][0]
    assert (window["center"], window["width"]) == (-600.0, 1500.0)


async def test_one_image_of_another_centre_makes_the_whole_export_not_found(
    world: World,
) -> None:
    ours = await upload_ct(world, slices=1)
    series = synthetic_ct_series(slices=1)
    theirs = await post_studies(
        world.client, world.b.technician.headers, [("b.dcm", series.files[0])]
    )
    their_id = theirs.json()["files"][0]["instance_id"]

    response = await world.client.post(
        "/api/v1/export",
        headers=world.a.technician.headers,
        json={"image_ids": [ours["instance_ids"][0], their_id], "format": "png"},
    )

    assert_problem(response, 404)


async def test_a_key_without_studies_read_is_refused_but_sees_no_other_centre(
    world: World,
) -> None:
    ours = await upload_ct(world, slices=1)
    theirs = await post_studies(
        world.client,
        world.b.technician.headers,
        [("b.dcm", synthetic_ct_series(slices=1).files[0])],
    )
    key = await create_key(
        world.client,
        world.a.manager.headers,
        name="jobs only",
        centre_id=world.a.id,
        scopes=["jobs:read"],
    )
    headers = {"X-API-Key": key.secret}

    own = await world.client.post(
        "/api/v1/export", headers=headers, json={"image_ids": ours["instance_ids"]}
    )
    other = await world.client.post(
        "/api/v1/export",
        headers=headers,
        json={"image_ids": [theirs.json()["files"][0]["instance_id"]]},
    )
    study = await world.client.post(
        f"/api/v1/studies/{ours['study_id']}/anonymize", headers=headers
    )

    assert_problem(own, 403)
    assert_problem(other, 404)
    assert_problem(study, 403)


@pytest.mark.parametrize(
    "body",
    [
        {"image_ids": [], "format": "png"},
        {"image_ids": ["not-a-uuid"], "format": "png"},
        {"format": "png"},
        {"image_ids": ["00000000-0000-0000-0000-000000000001"], "format": "gif"},
        {"image_ids": ["00000000-0000-0000-0000-000000000001"], "window": {"width": 0, "level": 1}},
    ],
)
async def test_bad_export_requests_are_a_problem(world: World, body: dict[str, Any]) -> None:
    response = await world.client.post(
        "/api/v1/export", headers=world.a.technician.headers, json=body
    )

    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)


# -- at ingest ---------------------------------------------------------------------------------


async def turn_on_deidentification(world: World) -> None:
    response = await world.client.patch(
        f"/api/v1/centres/{world.a.id}",
        headers=world.a.manager.headers,
        json={"deidentify_at_ingest": True},
    )
    assert response.status_code == 200, response.text
    assert response.json()["deidentify_at_ingest"] is True


async def test_a_centre_that_deidentifies_at_ingest_never_stores_the_original(
    world_on_each_database: World,
) -> None:
    world = world_on_each_database
    await turn_on_deidentification(world)
    series = synthetic_ct_series(slices=2)

    first = await post_studies(
        world.client, world.a.technician.headers, [("1.dcm", series.files[0])]
    )
    second = await post_studies(
        world.client, world.a.technician.headers, [("2.dcm", series.files[1])]
    )

    assert first.status_code == 201 and second.status_code == 201, second.text
    study_id = first.json()["studies"][0]["id"]
    assert second.json()["studies"][0]["id"] == study_id  # the same new UIDs on every upload
    study = (
        await world.client.get(f"/api/v1/studies/{study_id}", headers=world.a.technician.headers)
    ).json()
    assert study["patient"]["name"] in (None, "")
    assert study["study_instance_uid"] != series.study_instance_uid
    stored = await world.client.get(
        f"/api/v1/studies/{study_id}/instances/1", headers=world.a.technician.headers
    )
    assert b"Phantom" not in stored.content
    assert dcmread(io.BytesIO(stored.content)).PatientIdentityRemoved == "YES"


async def test_a_deidentifying_centre_refuses_patient_fields(world: World) -> None:
    await turn_on_deidentification(world)
    series = synthetic_ct_series(slices=1)

    response = await post_studies(
        world.client,
        world.a.technician.headers,
        [("1.dcm", series.files[0])],
        patient_name="Doe^Jane",
    )

    problem = assert_problem(response, 422)
    assert "patient_name" in problem["detail"]


async def test_only_managers_and_admins_change_deidentification_at_ingest(world: World) -> None:
    response = await world.client.patch(
        f"/api/v1/centres/{world.a.id}",
        headers=world.a.radiologist.headers,
        json={"deidentify_at_ingest": True},
    )

    assert_problem(response, 403)


async def test_other_centres_still_store_files_as_received(world: World) -> None:
    await turn_on_deidentification(world)
    series = synthetic_ct_series(slices=1)

    response = await post_studies(
        world.client, world.b.technician.headers, [("1.dcm", series.files[0])]
    )

    study_id = response.json()["studies"][0]["id"]
    stored = await world.client.get(
        f"/api/v1/studies/{study_id}/instances/1", headers=world.b.technician.headers
    )
    assert stored.content == series.files[0]


# -- pydicom's files through the batch route ----------------------------------------------------

PYDICOM_FILES = sorted(Path(f) for f in get_testdata_files() if Path(f).is_file())
PYDICOM_ROOT = Path(get_testdata_files("CT_small.dcm")[0]).parent


@pytest.fixture(scope="module")
async def corpus_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """One app for the corpus (its requests store nothing), with room for ~180 requests."""
    async with AsyncExitStack() as stack:
        served = await serve(
            stack,
            tmp_path_factory.mktemp("deidentify-corpus") / "data",
            rate_limit_uploads_per_minute="100000",
            rate_limit_reads_per_minute="100000",
        )
        yield await seed_world(served)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(
    "path", PYDICOM_FILES, ids=[str(p.relative_to(PYDICOM_ROOT)) for p in PYDICOM_FILES]
)
async def test_each_pydicom_file_is_deidentified_or_refused_with_a_reason(
    corpus_world: World, path: Path
) -> None:
    data = await asyncio.to_thread(path.read_bytes)

    response = await corpus_world.client.post(
        "/api/v1/anonymize/batch",
        headers=corpus_world.a.technician.headers,
        files=multipart([(path.name, data)]),
    )

    assert response.status_code < 500, response.text
    if response.status_code == 200:
        out = unzip(response)
        assert dcmread(io.BytesIO(out["00001.dcm"])).PatientIdentityRemoved == "YES"
    else:
        problem = assert_problem(response, 422)
        assert path.name in problem["detail"]
