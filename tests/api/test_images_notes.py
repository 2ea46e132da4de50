"""Measurements and text annotations on an instance: placed, listed and removed by the people of
its centre; invisible (404) to everyone else; removed by their author, a manager or an admin."""

from __future__ import annotations

import pytest

from tests.api.identity_fixtures import World, assert_problem
from tests.api.studies_helpers import post_studies
from tests.fixtures.imaging import synthetic_ct_series

LINE = {"kind": "line", "points": [[1, 2], [4, 6]], "value": 5.0, "unit": "mm", "label": "d1"}
NOTE = {"text": "Calcified nodule?", "position": [3.5, 4.0]}


async def an_instance(world: World) -> str:
    files = [("ct.dcm", synthetic_ct_series(slices=1).files[0])]
    response = await post_studies(world.client, world.a.technician.headers, files)
    instance_id: str = response.json()["files"][0]["instance_id"]
    return instance_id


@pytest.mark.parametrize(
    "kind, body, read",
    [
        ("measurements", LINE, lambda m: (m["kind"], m["points"], m["value"], m["label"])),
        ("annotations", NOTE, lambda a: (a["text"], a["position"], a["frame"])),
    ],
)
async def test_notes_are_placed_listed_and_removed_on_an_instance(
    world_on_each_database: World, kind: str, body: dict[str, object], read: object
) -> None:
    world = world_on_each_database
    instance = await an_instance(world)
    url = f"/api/v1/instances/{instance}/{kind}"
    radiologist = world.a.radiologist

    placed = await world.client.post(url, json=body, headers=radiologist.headers)
    assert placed.status_code == 201, placed.text
    note = placed.json()
    assert note["author_id"] == str(radiologist.id) and note["instance_id"] == instance

    listed = await world.client.get(url, headers=world.a.technician.headers)
    assert [n["id"] for n in listed.json()] == [note["id"]]
    assert read(listed.json()[0]) == read(note)  # type: ignore[operator]

    removed = await world.client.delete(f"{url}/{note['id']}", headers=radiologist.headers)
    assert removed.status_code == 204
    assert (await world.client.get(url, headers=radiologist.headers)).json() == []
    gone = await world.client.delete(f"{url}/{note['id']}", headers=radiologist.headers)
    assert_problem(gone, 404)


@pytest.mark.parametrize("kind, body", [("measurements", LINE), ("annotations", NOTE)])
async def test_another_centre_can_neither_see_nor_touch_the_notes(
    world: World, kind: str, body: dict[str, object]
) -> None:
    instance = await an_instance(world)
    url = f"/api/v1/instances/{instance}/{kind}"
    note = (await world.client.post(url, json=body, headers=world.a.manager.headers)).json()
    outsider = world.b.manager.headers

    assert_problem(await world.client.get(url, headers=outsider), 404)
    assert_problem(await world.client.post(url, json=body, headers=outsider), 404)
    assert_problem(await world.client.delete(f"{url}/{note['id']}", headers=outsider), 404)
    assert len((await world.client.get(url, headers=world.a.radiologist.headers)).json()) == 1


async def test_a_note_is_removed_by_its_author_a_manager_or_an_admin_only(world: World) -> None:
    instance = await an_instance(world)
    url = f"/api/v1/instances/{instance}/measurements"
    client = world.client
    ids = [
        (await client.post(url, json=LINE, headers=world.a.radiologist.headers)).json()["id"]
        for _ in range(3)
    ]

    assert_problem(await client.delete(f"{url}/{ids[0]}", headers=world.a.technician.headers), 403)
    assert_problem(await client.delete(f"{url}/{ids[0]}", headers=world.a.key.headers), 403)
    assert (
        await client.delete(f"{url}/{ids[0]}", headers=world.a.manager.headers)
    ).status_code == 204
    assert (await client.delete(f"{url}/{ids[1]}", headers=world.admin.headers)).status_code == 204
    other = await an_instance(world)
    wrong_instance = f"/api/v1/instances/{other}/measurements/{ids[2]}"
    assert_problem(await client.delete(wrong_instance, headers=world.admin.headers), 404)


@pytest.mark.parametrize(
    "kind, body",
    [
        ("measurements", {**LINE, "points": [[1, 2]]}),
        ("measurements", {**LINE, "kind": "angle"}),
        ("measurements", {**LINE, "kind": "volume"}),
        ("measurements", {**LINE, "frame": 2}),
        ("measurements", {**LINE, "unit": ""}),
        ("annotations", {**NOTE, "text": "   "}),
        ("annotations", {**NOTE, "position": [1]}),
        ("annotations", {**NOTE, "frame": 0}),
    ],
    ids=[
        "line-one-point",
        "angle-two-points",
        "unknown-kind",
        "missing-frame",
        "no-unit",
        "blank-text",
        "half-position",
        "frame-zero",
    ],
)
async def test_notes_that_make_no_sense_are_refused(
    world: World, kind: str, body: dict[str, object]
) -> None:
    instance = await an_instance(world)
    url = f"/api/v1/instances/{instance}/{kind}"

    response = await world.client.post(url, json=body, headers=world.a.radiologist.headers)

    assert response.status_code in (400, 422), response.text
    assert_problem(response, response.status_code)
    assert (await world.client.get(url, headers=world.a.radiologist.headers)).json() == []


async def test_an_api_key_needs_studies_write_to_place_notes(world: World) -> None:
    instance = await an_instance(world)
    url = f"/api/v1/instances/{instance}/annotations"

    refused = await world.client.post(url, json=NOTE, headers=world.a.key.headers)

    assert_problem(refused, 403)
    assert (await world.client.get(url, headers=world.a.key.headers)).status_code == 200
