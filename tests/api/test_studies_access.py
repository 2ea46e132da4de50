"""Who may upload, read, list and delete studies, and what another centre sees (nothing).

Uploads: technicians, centre managers and admins (who name the centre) 201; radiologists 403;
API keys need ``studies:write``. Reads: everyone of the study's centre, API keys with
``studies:read``, admins; another centre 404. Delete: admins only (403 in the centre, 404
outside it), and the files go too. Every read of patient data is in the audit trail, without
the patient's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.api.identity_fixtures import World, assert_problem, create_key
from tests.api.studies_helpers import post_studies, stored_keys
from tests.fixtures.imaging import synthetic_ct_series


def ct_files(slices: int = 2) -> list[tuple[str, bytes]]:
    series = synthetic_ct_series(slices=slices)
    return [(f"slice-{n}.dcm", data) for n, data in enumerate(series.files)]


@dataclass(frozen=True)
class Uploaded:
    study_id: str
    code: str
    instance_id: str


async def uploaded_to_a(world: World) -> Uploaded:
    response = await post_studies(world.client, world.a.technician.headers, ct_files())
    assert response.status_code == 201, response.text
    body = response.json()
    return Uploaded(
        study_id=body["studies"][0]["id"],
        code=body["studies"][0]["code"],
        instance_id=body["files"][0]["instance_id"],
    )


def headers_of(world: World, who: str) -> dict[str, str]:
    if who == "admin":
        return world.admin.headers
    centre, role = who.split("-", 1)
    staff = world.a if centre == "a" else world.b
    return staff.key.headers if role == "key" else getattr(staff, role).headers


UPLOADERS = [
    ("a-technician", {}, 201),
    ("a-manager", {}, 201),
    ("admin", {"centre": "a"}, 201),
    ("a-radiologist", {}, 403),
    ("a-key", {}, 403),  # studies:read and jobs:read only
    ("admin", {}, 422),  # an admin must say which centre
    ("a-technician", {"centre": "b"}, 404),
]


@pytest.mark.parametrize(
    "who, options, status",
    UPLOADERS,
    ids=[f"{w}{'-' + '-'.join(o.values()) if o else ''}->{s}" for w, o, s in UPLOADERS],
)
async def test_who_may_upload(world: World, who: str, options: dict[str, str], status: int) -> None:
    fields = {}
    if "centre" in options:
        fields["centre_id"] = str(world.a.id if options["centre"] == "a" else world.b.id)

    response = await post_studies(world.client, headers_of(world, who), ct_files(), **fields)

    assert response.status_code == status, response.text
    if status != 201:
        assert_problem(response, status)
        assert stored_keys(world.served.container) == []


async def test_an_api_key_with_studies_write_uploads_into_its_centre(world: World) -> None:
    key = await create_key(
        world.client,
        world.a.manager.headers,
        name="PACS bridge",
        centre_id=world.a.id,
        scopes=["studies:write", "studies:read"],
    )

    response = await post_studies(world.client, key.headers, ct_files())

    assert response.status_code == 201, response.text
    study_id = response.json()["studies"][0]["id"]
    study = await world.client.get(f"/api/v1/studies/{study_id}", headers=key.headers)
    assert study.json()["centre_id"] == str(world.a.id)
    assert study.json()["uploaded_by"] is None


def read_routes(up: Uploaded) -> list[str]:
    return [
        f"/api/v1/studies/{up.study_id}",
        f"/api/v1/studies/code/{up.code}",
        f"/api/v1/studies/{up.study_id}/series",
        f"/api/v1/studies/{up.study_id}/instances",
        f"/api/v1/studies/{up.study_id}/instances/1",
        f"/api/v1/studies/{up.study_id}/instances/{up.instance_id}",
        f"/api/v1/instances/{up.instance_id}/metadata",
        f"/api/v1/instances/{up.instance_id}/rendered",
        f"/api/v1/instances/{up.instance_id}/measurements",
        f"/api/v1/instances/{up.instance_id}/annotations",
    ]


READERS = [
    ("a-manager", 200),
    ("a-radiologist", 200),
    ("a-technician", 200),
    ("a-key", 200),
    ("admin", 200),
    ("b-manager", 404),
    ("b-radiologist", 404),
    ("b-technician", 404),
    ("b-key", 404),
]


@pytest.mark.parametrize("who, status", READERS, ids=[f"{w}->{s}" for w, s in READERS])
async def test_a_study_is_read_by_its_centre_and_admins_and_is_not_found_elsewhere(
    world: World, who: str, status: int
) -> None:
    up = await uploaded_to_a(world)

    answers = {
        route: (await world.client.get(route, headers=headers_of(world, who))).status_code
        for route in read_routes(up)
    }

    assert answers == dict.fromkeys(read_routes(up), status)


async def test_two_centres_sending_the_same_study_keep_separate_copies(
    world_on_each_database: World,
) -> None:
    world = world_on_each_database
    files = ct_files(3)

    mine = await post_studies(world.client, world.a.technician.headers, files)
    theirs = await post_studies(world.client, world.b.technician.headers, files)

    assert (mine.status_code, theirs.status_code) == (201, 201)
    a_study, b_study = mine.json()["studies"][0], theirs.json()["studies"][0]
    assert b_study["created"] and b_study["stored"] == 3
    assert a_study["id"] != b_study["id"] and a_study["code"] != b_study["code"]
    keys = stored_keys(world.served.container)
    assert len(keys) == 6
    assert {key.split("/")[1] for key in keys} == {str(world.a.id), str(world.b.id)}
    client = world.client
    for staff, own, other in ((world.a, a_study, b_study), (world.b, b_study, a_study)):
        headers = staff.radiologist.headers
        assert (
            await client.get(f"/api/v1/studies/{own['id']}", headers=headers)
        ).status_code == 200
        refused = await client.get(f"/api/v1/studies/{other['id']}", headers=headers)
        assert_problem(refused, 404)
        by_code = await client.get(f"/api/v1/studies/code/{other['code']}", headers=headers)
        assert_problem(by_code, 404)
        listed = await client.get("/api/v1/studies", headers=headers)
        assert [s["id"] for s in listed.json()] == [own["id"]]


DELETERS = [
    ("a-manager", 403),
    ("a-technician", 403),
    ("a-radiologist", 403),
    ("a-key", 403),
    ("b-manager", 404),
    ("admin", 204),
]


@pytest.mark.parametrize("who, status", DELETERS, ids=[f"{w}->{s}" for w, s in DELETERS])
async def test_only_admins_delete_a_study_and_its_files_go_with_it(
    world: World, who: str, status: int
) -> None:
    up = await uploaded_to_a(world)
    container = world.served.container

    response = await world.client.delete(
        f"/api/v1/studies/{up.study_id}", headers=headers_of(world, who)
    )

    assert response.status_code == status, response.text
    still_there = await world.client.get(
        f"/api/v1/studies/{up.study_id}", headers=world.admin.headers
    )
    if status == 204:
        assert stored_keys(container) == []
        assert_problem(still_there, 404)
    else:
        assert_problem(response, status)
        assert len(stored_keys(container)) == 2
        assert still_there.status_code == 200


async def listed(world: World, headers: dict[str, str], **params: Any) -> httpx.Response:
    return await world.client.get("/api/v1/studies", headers=headers, params=params)


async def test_lists_are_filtered_paginated_and_scoped_to_the_centre(world: World) -> None:
    tech = world.a.technician.headers
    await post_studies(world.client, tech, ct_files(), patient_id="MRN-1", urgency="stat")
    await post_studies(world.client, tech, ct_files(), patient_id="MRN-2", modality="mri")
    await post_studies(world.client, tech, ct_files(), patient_name="Smith^Anna")
    await post_studies(world.client, world.b.technician.headers, ct_files())
    headers = world.a.radiologist.headers

    everything = await listed(world, headers)
    assert everything.headers["x-total-count"] == "3"
    assert everything.json()[0]["patient"]["patient_id"] == "MRN-1"  # stat first
    assert [
        s["patient"]["patient_id"] for s in (await listed(world, headers, modality="MRI")).json()
    ] == ["MRN-2"]
    assert len((await listed(world, headers, patient_id="MRN-1")).json()) == 1
    assert len((await listed(world, headers, patient_name="smith")).json()) == 1
    assert len((await listed(world, headers, status="uploaded")).json()) == 3
    assert len((await listed(world, headers, status="verified")).json()) == 0
    assert (
        len((await listed(world, headers, date_from="2026-01-15", date_to="2026-01-15")).json())
        == 3
    )
    assert len((await listed(world, headers, date_from="2026-01-16")).json()) == 0
    page = await listed(world, headers, skip=1, limit=1)
    assert len(page.json()) == 1 and page.headers["x-total-count"] == "3"
    other_centre = await listed(world, headers, centre_id=str(world.b.id))
    assert other_centre.headers["x-total-count"] == "3"  # not the admin: stays in its centre
    admin_all = await listed(world, world.admin.headers)
    assert admin_all.headers["x-total-count"] == "4"
    admin_b = await listed(world, world.admin.headers, centre_id=str(world.b.id))
    assert admin_b.headers["x-total-count"] == "1"
    for bad in ({"limit": 1001}, {"skip": -1}, {"status": "lost"}, {"modality": "smell"}):
        assert (await listed(world, headers, **bad)).status_code in (400, 422)


async def test_reads_of_a_study_are_audited_without_the_patients_name(world: World) -> None:
    up = await uploaded_to_a(world)
    reader = world.a.radiologist
    for route in read_routes(up)[:8]:
        await world.client.get(route, headers=reader.headers)

    trail = await world.client.get(
        "/api/v1/audit", headers=world.admin.headers, params={"actor": str(reader.id)}
    )

    actions = [event["action"] for event in trail.json()]
    assert {"study.read", "series.list", "instance.list", "instance.read"} <= set(actions)
    assert "Phantom" not in trail.text and "SYN-0001" not in trail.text
    uploads = await world.client.get(
        "/api/v1/audit", headers=world.admin.headers, params={"resource": f"study:{up.study_id}"}
    )
    assert "study.upload" in [event["action"] for event in uploads.json()]


async def test_a_key_without_studies_read_is_refused_in_its_centre_and_blind_outside_it(
    world: World,
) -> None:
    up = await uploaded_to_a(world)
    theirs = await post_studies(world.client, world.b.technician.headers, ct_files())
    other_study = theirs.json()["studies"][0]["id"]
    jobs_only = await create_key(
        world.client, world.admin.headers, name="jobs", centre_id=world.a.id, scopes=["jobs:read"]
    )

    for route in read_routes(up):
        assert_problem(await world.client.get(route, headers=jobs_only.headers), 403)
    outside = await world.client.get(f"/api/v1/studies/{other_study}", headers=jobs_only.headers)
    assert_problem(outside, 404)


@pytest.mark.parametrize("which", ["²", "0", "99", "\u0661"])
async def test_an_instance_position_that_is_no_position_is_not_found(
    world: World, which: str
) -> None:
    up = await uploaded_to_a(world)

    response = await world.client.get(
        f"/api/v1/studies/{up.study_id}/instances/{which}", headers=world.a.technician.headers
    )

    assert_problem(response, 404)
