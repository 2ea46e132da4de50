"""Large uploads past the API: ``POST /uploads/presign``, a PUT to the URL it answers, then
``POST /studies/from-storage``.

On the filesystem store the API serves the PUT itself, authenticated by the URL's signature:
expired, tampered and reused URLs are refused. On S3 the URL is S3's own (moto here).
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from adapters.memory.clock import ManualClock
from adapters.security import Argon2PasswordHasher
from adapters.storage import FilesystemBlobStore
from adapters.storage.s3 import S3BlobStore
from entrypoints.bootstrap import bootstrap
from entrypoints.http import create_app
from entrypoints.jobs import sweep_staging_once
from tests.api.conftest import Served, ServedFactory, settings_for
from tests.api.identity_fixtures import World, assert_problem, seed_world
from tests.api.studies_helpers import stored_keys, study_count
from tests.fixtures.imaging import synthetic_ct_series

CT = synthetic_ct_series(slices=1).files[0]


async def presign(
    world: World, headers: dict[str, str] | None = None, **body: Any
) -> dict[str, Any]:
    response = await world.client.post(
        "/api/v1/uploads/presign",
        json={"file_name": "big scan.dcm", "content_type": "application/dicom", **body},
        headers=headers or world.a.technician.headers,
    )
    assert response.status_code == 201, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def put(world: World, url: str, data: bytes = CT) -> httpx.Response:
    return await world.client.put(url, content=data, headers={"Content-Type": "application/dicom"})


async def from_storage(
    world: World, key: str, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    return await world.client.post(
        "/api/v1/studies/from-storage",
        json={"key": key, **body},
        headers=headers or world.a.technician.headers,
    )


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return parts._replace(query=urlencode(query)).geturl()


async def test_a_file_put_to_a_presigned_url_is_ingested_like_an_upload(world: World) -> None:
    presigned = await presign(world)
    assert presigned["method"] == "PUT"
    assert presigned["key"].startswith(f"staging/{world.a.id}/")
    assert presigned["key"].endswith("/big_scan.dcm")
    assert presigned["url"].startswith("http://testserver/api/v1/uploads/staging/")

    received = await put(world, presigned["url"])  # no credentials: the signature is enough
    assert received.status_code == 200, received.text
    assert received.json() == {"key": presigned["key"], "size_bytes": len(CT)}

    unknown_model = await from_storage(world, presigned["key"], model_id="m1")
    assert "not installed" in assert_problem(unknown_model, 422)["detail"]
    ingested = await from_storage(
        world, presigned["key"], patient_name="Big^File", model_id="demo-lesion-unet"
    )
    assert ingested.status_code == 201, ingested.text
    body = ingested.json()
    assert body["processing_status"] == "stored"
    headers = world.a.radiologist.headers
    job = await world.client.get(f"/api/v1/jobs/{body['job_id']}", headers=headers)
    assert job.json()["study_id"] == body["study_id"]
    file = await world.client.get(
        f"/api/v1/studies/{body['study_id']}/instances/1", headers=headers
    )
    assert file.content == CT
    study = await world.client.get(f"/api/v1/studies/{body['study_id']}", headers=headers)
    assert study.json()["patient"]["name"] == "Big^File"
    assert not any(key.startswith("staging/") for key in stored_keys(world.served.container))
    assert_problem(await from_storage(world, presigned["key"]), 404)  # consumed


async def test_the_public_base_url_setting_prefixes_the_upload_url(
    make_served: ServedFactory,
) -> None:
    world = await seed_world(await make_served(public_base_url="https://pacs.example/"))

    presigned = await presign(world)

    assert presigned["url"].startswith("https://pacs.example/api/v1/uploads/staging/")
    path = urlsplit(presigned["url"])
    received = await put(world, f"{path.path}?{path.query}")
    assert received.status_code == 200


async def test_an_expired_url_is_refused(make_served: ServedFactory) -> None:
    clock = ManualClock()
    world = await seed_world(await make_served(clock=clock))
    presigned = await presign(world)

    clock.advance(seconds=601)
    response = await put(world, presigned["url"])

    assert "expired" in assert_problem(response, 401)["detail"]
    assert stored_keys(world.served.container) == []


@pytest.mark.parametrize("part", ["signature", "expires", "key", "no-signature"])
async def test_a_tampered_url_is_refused(world: World, part: str) -> None:
    url = (await presign(world))["url"]
    signature = dict(parse_qsl(urlsplit(url).query))["signature"]
    if part == "signature":
        url = with_query(url, signature=signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    elif part == "expires":
        url = with_query(
            url, expires=str(int(dict(parse_qsl(urlsplit(url).query))["expires"]) + 3600)
        )
    elif part == "key":  # the same signature on another centre's staging key
        url = url.replace(str(world.a.id), str(world.b.id))
    else:
        url = url.split("?")[0]

    response = await world.client.put(url, content=CT, headers=world.a.technician.headers)

    assert_problem(response, 401)
    assert stored_keys(world.served.container) == []


async def test_a_url_is_good_for_one_upload_only(world: World) -> None:
    presigned = await presign(world)
    assert (await put(world, presigned["url"])).status_code == 200

    again = await put(world, presigned["url"], b"something else")
    assert_problem(again, 409)
    assert (await from_storage(world, presigned["key"])).status_code == 201
    after_ingest = await put(world, presigned["url"], b"something else")
    assert_problem(after_ingest, 409)
    assert stored_keys(world.served.container) == [
        key for key in stored_keys(world.served.container) if key.startswith("centres/")
    ]


async def test_another_centres_staged_file_is_not_found_and_radiologists_cannot_ingest(
    world: World,
) -> None:
    presigned = await presign(world)
    await put(world, presigned["url"])

    assert_problem(await from_storage(world, presigned["key"], world.b.technician.headers), 404)
    assert_problem(await from_storage(world, presigned["key"], world.b.key.headers), 404)
    assert_problem(await from_storage(world, presigned["key"], world.a.radiologist.headers), 403)
    for key in ("centres/x/studies/y/z.dcm", f"staging/{world.a.id}/not-a-uuid/x.dcm", "../etc"):
        assert_problem(await from_storage(world, key), 404)
    assert (await from_storage(world, presigned["key"])).status_code == 201


async def test_presigning_follows_the_upload_rules(world: World) -> None:
    for headers, status in (
        (world.a.radiologist.headers, 403),
        (world.a.key.headers, 403),
        (world.admin.headers, 422),
    ):
        response = await world.client.post(
            "/api/v1/uploads/presign", json={"file_name": "x.dcm"}, headers=headers
        )
        assert_problem(response, status)
    admin = await presign(world, world.admin.headers, centre_id=str(world.b.id))
    assert admin["key"].startswith(f"staging/{world.b.id}/")
    unnamed = await presign(world, file_name="../../etc/passwd")
    assert unnamed["key"].endswith("/passwd")  # a name, never a path


async def test_a_staged_file_that_is_not_an_image_is_refused_by_name_and_removed(
    world: World,
) -> None:
    presigned = await presign(world, file_name="notes.txt")
    await put(world, presigned["url"], b"just some text, not an image")

    response = await from_storage(world, presigned["key"])

    problem = assert_problem(response, 422)
    assert "notes.txt" in problem["detail"] and "not a supported image" in problem["detail"]
    assert stored_keys(world.served.container) == []
    assert await study_count(world.served.container) == 0


async def test_a_put_over_the_size_limit_is_refused_with_413_and_nothing_is_kept(
    make_served: ServedFactory,
) -> None:
    world = await seed_world(await make_served(max_upload_bytes="1000"))
    presigned = await presign(world)

    response = await put(world, presigned["url"], CT)

    assert_problem(response, 413)
    assert stored_keys(world.served.container) == []


async def test_a_staged_file_nobody_ingests_is_swept_and_a_fresh_one_is_kept(
    make_served: ServedFactory,
) -> None:
    world = await seed_world(await make_served(staging_ttl_s="3600"))
    container = world.served.container
    abandoned = await presign(world)
    fresh = await presign(world, file_name="fresh.dcm")
    assert (await put(world, abandoned["url"])).status_code == 200
    assert (await put(world, fresh["url"])).status_code == 200
    # the filesystem store dates an object by its file's mtime: age the abandoned one
    store = container.blob_store
    assert isinstance(store, FilesystemBlobStore)
    two_hours_ago = (container.clock.now() - timedelta(hours=2)).timestamp()
    os.utime(store.path_for(abandoned["key"]), (two_hours_ago, two_hours_ago))

    deleted = await sweep_staging_once(
        store, container.clock.now(), older_than_s=container.settings.staging_ttl_s
    )

    assert deleted == 1
    assert [key for key in stored_keys(container) if key.startswith("staging/")] == [fresh["key"]]
    assert_problem(await from_storage(world, abandoned["key"]), 404)
    assert (await from_storage(world, fresh["key"])).status_code == 201


async def serve_on_s3(stack: AsyncExitStack, data_dir: Path, store: S3BlobStore) -> Served:
    container = await bootstrap(
        settings_for(data_dir),
        database="memory",
        blob_store=store,
        password_hasher=Argon2PasswordHasher.for_tests(),
    )
    stack.push_async_callback(container.aclose)
    app = create_app(container)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    return Served(client=await stack.enter_async_context(client), container=container, app=app)


async def test_on_s3_the_url_is_the_stores_own_and_the_object_is_ingested_then_removed(
    tmp_path: Path, s3_blob_store: S3BlobStore
) -> None:
    async with AsyncExitStack() as stack:
        world = await seed_world(await serve_on_s3(stack, tmp_path / "data", s3_blob_store))
        presigned = await presign(world)
        assert not presigned["url"].startswith("http://testserver")
        assert s3_blob_store.bucket in presigned["url"]

        async with httpx.AsyncClient() as outside:
            received = await outside.put(presigned["url"], content=CT)
        assert received.status_code == 200, received.text
        ingested = await from_storage(world, presigned["key"])

        assert ingested.status_code == 201, ingested.text
        assert await s3_blob_store.head(presigned["key"]) is None
        file = await world.client.get(
            f"/api/v1/studies/{ingested.json()['study_id']}/instances/1",
            headers=world.a.radiologist.headers,
        )
        assert file.content == CT
        not_served_here = await world.client.put(
            f"/api/v1/uploads/{presigned['key']}?expires=1&signature=x", content=CT
        )
        assert_problem(not_served_here, 404)


@pytest.mark.postgres
async def test_a_url_used_through_one_api_process_is_refused_by_another(
    make_served: ServedFactory, postgres_dsn: str
) -> None:
    """Two containers on one data dir and one database, as ``serve --workers 2`` runs them:
    the claim lives in the database, so a URL used through A is refused through B, even
    after the staged object was ingested and removed (nothing in storage says it was used)."""
    options = {"database": "postgres", "database_url": postgres_dsn}
    world = await seed_world(await make_served(**options))
    other = await make_served(**options)
    presigned = await presign(world)

    assert (await put(world, presigned["url"])).status_code == 200
    assert_problem(await other.client.put(presigned["url"], content=b"something else"), 409)
    assert (await from_storage(world, presigned["key"])).status_code == 201
    refused = await other.client.put(presigned["url"], content=b"something else")

    assert "already used" in assert_problem(refused, 409)["detail"]
    assert stored_keys(other.container) == [
        key for key in stored_keys(other.container) if key.startswith("centres/")
    ]
