"""``POST /api/v1/upload``: one file (plus an optional ``model_id``) in, the study, the image and
the job analysing it out; and whatever bytes arrive, the answer is a 2xx or a 4xx, never a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_files

from tests.api.conftest import serve
from tests.api.identity_fixtures import World, assert_problem, seed_world
from tests.api.studies_helpers import stored_keys, upload_one
from tests.fixtures.imaging import synthetic_ct_series

SEEDS = [
    synthetic_ct_series(slices=1).files[0],
    Path(get_testdata_files("MR_small_RLE.dcm")[0]).read_bytes(),
    Path(get_testdata_files("SC_rgb_jpeg_dcmtk.dcm")[0]).read_bytes(),
]
"""Valid files whose truncations the fuzz test sends."""


async def test_one_file_answers_the_study_the_image_and_its_job(world: World) -> None:
    data = synthetic_ct_series(slices=1).files[0]

    response = await upload_one(
        world.client, world.a.technician.headers, "ct.dcm", data, model_id="demo-lesion-unet"
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {
        "study_id",
        "study_code",
        "image_id",
        "job_id",
        "processing_status",
        "uploaded_at",
    }
    assert body["processing_status"] == "stored"
    job = await world.client.get(f"/api/v1/jobs/{body['job_id']}", headers=world.a.key.headers)
    assert job.status_code == 200, job.text
    assert (job.json()["study_id"], job.json()["model_id"]) == (
        body["study_id"],
        "demo-lesion-unet",
    )
    assert datetime.fromisoformat(body["uploaded_at"]).tzinfo is not None
    headers = world.a.radiologist.headers
    listing = await world.client.get(
        f"/api/v1/studies/{body['study_id']}/instances", headers=headers
    )
    assert [i["id"] for i in listing.json()] == [body["image_id"]]
    again = await upload_one(world.client, world.a.technician.headers, "ct.dcm", data)
    assert again.json()["processing_status"] == "duplicate"
    assert again.json()["image_id"] == body["image_id"]


async def test_the_file_must_come_as_one_file_field(world: World) -> None:
    data = synthetic_ct_series(slices=1).files[0]
    headers = world.a.technician.headers

    missing = await world.client.post(
        "/api/v1/upload", headers=headers, files={"other": ("x.dcm", data)}
    )
    model_as_file = await world.client.post(
        "/api/v1/upload",
        headers=headers,
        files=[("file", ("x.dcm", data)), ("model_id", ("model.bin", b"\x00\x01"))],
    )
    two = await world.client.post(
        "/api/v1/upload",
        headers=headers,
        files=[("file", ("a.dcm", data)), ("file", ("b.dcm", data))],
    )

    assert "file" in assert_problem(missing, 422)["detail"]
    assert model_as_file.status_code == 400 and "model_id" in model_as_file.text
    assert two.status_code == 400
    assert stored_keys(world.served.container) == []


async def test_a_radiologist_may_not_upload(world: World) -> None:
    data = synthetic_ct_series(slices=1).files[0]

    response = await upload_one(world.client, world.a.radiologist.headers, "ct.dcm", data)

    assert_problem(response, 403)


@pytest.fixture(scope="module")
async def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:
        served = await serve(
            stack,
            tmp_path_factory.mktemp("fuzz") / "data",
            rate_limit_uploads_per_minute="1000000",
        )
        yield await seed_world(served)


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """Random bytes, or a valid file cut short, or one with a stretch of it overwritten."""
    choice = draw(st.integers(0, 2))
    if choice == 0:
        return draw(st.binary(max_size=2048))
    seed = draw(st.sampled_from(SEEDS))
    if choice == 1:
        return seed[: draw(st.integers(0, len(seed) - 1))]
    start = draw(st.integers(0, len(seed) - 1))
    junk = draw(st.binary(min_size=1, max_size=64))
    return seed[:start] + junk + seed[start + len(junk) :]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=hostile_bytes())
async def test_random_and_truncated_bytes_get_an_answer_but_never_a_server_error(
    fuzz_world: World, data: bytes
) -> None:
    response = await upload_one(fuzz_world.client, fuzz_world.a.technician.headers, "f.dcm", data)

    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert "f.dcm" in assert_problem(response, response.status_code)["detail"]
