"""The audit trail through the real API: who did what to which resource, from where, with what
outcome; filtered by actor, resource and time; for admins only; never a password or a token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

import pytest

from adapters.memory.clock import ManualClock
from tests.api.conftest import database_of_its_own, serve
from tests.api.identity_fixtures import PASSWORD, World, assert_problem, seed_world, sign_in

AUDIT = "/api/v1/audit"
NEW_PASSWORD = "a brand new passphrase"
WRONG_PASSWORD = "surely not the password"
CLIENT_ADDRESS = "127.0.0.1"
"""Where httpx's ASGI transport says every request comes from."""


class Scene:
    """A world whose clock moved on a minute after seeding, and a few actions since then."""

    def __init__(self, world: World, clock: ManualClock, seeded_by: datetime) -> None:
        self.world = world
        self.clock = clock
        self.seeded_by = seeded_by

    async def events(self, **params: str) -> list[dict[str, Any]]:
        response = await self.world.client.get(
            AUDIT, params={"limit": "1000", **params}, headers=self.world.admin.headers
        )
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()
        return events


@pytest.fixture(scope="module")
async def scene(
    module_database: str | None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Scene]:
    """One scene per database for the whole module: its tests only read the trail."""
    async with AsyncExitStack() as stack:
        options = await database_of_its_own(stack, module_database)
        clock = ManualClock()
        data_dir = tmp_path_factory.mktemp("audit") / "data"
        served = await serve(stack, data_dir, clock=clock, **options)
        yield await act(await seed_world(served), clock)


async def act(world: World, clock: ManualClock) -> Scene:
    seeded_by = clock.now()
    clock.advance(seconds=60)
    a = world.a
    edited = await world.client.patch(
        f"/api/v1/users/{a.staff.id}",
        json={"full_name": "Renamed Staff", "password": NEW_PASSWORD},
        headers=a.manager.headers,
    )
    assert edited.status_code == 200
    assert (await sign_in(world.client, a.technician.username, WRONG_PASSWORD)).status_code == 401
    revoked = await world.client.delete(
        f"/api/v1/api-keys/{a.spare_key.id}", headers=world.admin.headers
    )
    assert revoked.status_code == 204
    return Scene(world, clock, seeded_by)


async def test_the_trail_says_who_did_what_to_which_resource_from_where(scene: Scene) -> None:
    a = scene.world.a

    events = await scene.events()

    edit = next(e for e in events if e["action"] == "user.update")
    assert edit["actor_kind"] == "user"
    assert edit["actor_id"] == str(a.manager.id)
    assert edit["actor_display"] == a.manager.username
    assert edit["resource_type"] == "user"
    assert edit["resource_id"] == str(a.staff.id)
    assert edit["centre_id"] == str(a.id)
    assert edit["outcome"] == "success"
    assert edit["client_address"] == CLIENT_ADDRESS
    assert edit["request_id"]
    revocation = next(e for e in events if e["action"] == "api_key.revoke")
    assert revocation["actor_id"] == str(scene.world.admin.id)
    assert revocation["resource_id"] == str(a.spare_key.id)


async def test_failed_and_successful_sign_ins_are_on_the_trail(scene: Scene) -> None:
    technician = scene.world.a.technician

    logins = [e for e in await scene.events() if e["action"] == "auth.login"]

    mine = [e for e in logins if e["actor_display"] == technician.username]
    assert {e["outcome"] for e in mine} == {"success", "denied"}
    assert all(e["client_address"] == CLIENT_ADDRESS for e in mine)
    assert len(logins) >= 7  # the admin and the six signed-in staff of the two centres


async def test_events_of_one_actor(scene: Scene) -> None:
    manager = scene.world.a.manager

    events = await scene.events(actor=str(manager.id))

    assert {e["actor_id"] for e in events} == {str(manager.id)}
    assert {"auth.login", "user.update"} <= {e["action"] for e in events}


async def test_events_of_one_kind_of_resource(scene: Scene) -> None:
    events = await scene.events(resource="user")

    assert {e["resource_type"] for e in events} == {"user"}
    assert {"user.create", "user.update", "auth.login"} <= {e["action"] for e in events}


async def test_events_of_one_resource(scene: Scene) -> None:
    staff = scene.world.a.staff

    events = await scene.events(resource=f"user:{staff.id}")

    assert {e["resource_id"] for e in events} == {str(staff.id)}
    assert [e["action"] for e in events] == ["user.update", "user.create"]


async def test_events_since_a_moment(scene: Scene) -> None:
    since = scene.seeded_by.replace(second=30)

    events = await scene.events(since=since.isoformat())

    assert {e["action"] for e in events} == {"user.update", "auth.login", "api_key.revoke"}
    assert all(datetime.fromisoformat(e["at"]) >= since for e in events)
    assert len(await scene.events()) > len(events)


@pytest.mark.parametrize("actor", ["manager", "radiologist", "technician", "api-key"])
async def test_only_admins_read_the_trail(scene: Scene, actor: str) -> None:
    a = scene.world.a
    headers = {
        "manager": a.manager.headers,
        "radiologist": a.radiologist.headers,
        "technician": a.technician.headers,
        "api-key": a.key.headers,
    }[actor]

    assert_problem(await scene.world.client.get(AUDIT, headers=headers), 403)


async def test_no_event_holds_a_password_a_token_or_a_key(scene: Scene) -> None:
    world = scene.world
    members = [world.admin]
    secrets = [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD]
    for centre in (world.a, world.b):
        members += [centre.manager, centre.radiologist, centre.technician]
        secrets += [centre.key.secret, centre.spare_key.secret]
    secrets += [member.token for member in members if member.token]

    response = await world.client.get(AUDIT, params={"limit": "1000"}, headers=world.admin.headers)

    assert len(response.json()) > 20
    leaked = [secret[:12] for secret in secrets if secret in response.text]
    assert leaked == []
    signatures = [member.token.rsplit(".", 1)[1] for member in members if member.token]
    assert not any(signature in response.text for signature in signatures)
