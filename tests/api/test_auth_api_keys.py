"""API keys for machine clients, through the real API: shown once, usable in either header,
dead the moment they are revoked, and never more than the centre's reader they were made as."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.memory.clock import ManualClock
from tests.api.conftest import ServedFactory
from tests.api.identity_fixtures import (
    KEY_SCOPES,
    PASSWORD,
    Key,
    World,
    assert_problem,
    seed_world,
)

USERS = "/api/v1/users"


def as_bearer(key: Key) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.secret}"}


async def test_a_new_key_is_shown_once_and_never_listed(world_on_each_database: World) -> None:
    world = world_on_each_database

    created = await world.client.post(
        "/api/v1/api-keys",
        json={"name": "PACS bridge", "scopes": ["studies:write"]},
        headers=world.a.manager.headers,
    )

    assert created.status_code == 201
    secret = created.json()["key"]
    assert secret.startswith("hf_")
    assert created.json()["prefix"] == secret[3:11]
    listed = await world.client.get("/api/v1/api-keys", headers=world.a.manager.headers)
    assert listed.status_code == 200
    entry = next(k for k in listed.json() if k["id"] == created.json()["id"])
    assert entry["prefix"] == secret[3:11]
    assert entry["scopes"] == ["studies:write"]
    for key in listed.json():
        assert "key" not in key
        assert not any("hash" in name for name in key)
    assert secret[11:] not in listed.text
    assert world.a.key.secret[11:] not in listed.text


@pytest.mark.parametrize("header", ["x-api-key", "bearer"])
async def test_a_key_is_accepted_in_either_header(
    shared_world_on_each_database: World, header: str
) -> None:
    world = shared_world_on_each_database
    key = world.a.key
    headers = key.headers if header == "x-api-key" else as_bearer(key)

    response = await world.client.get(USERS, headers=headers)

    assert response.status_code == 200
    assert {user["centre_id"] for user in response.json()} == {str(world.a.id)}


@pytest.mark.parametrize("header", ["x-api-key", "bearer"])
async def test_a_revoked_key_is_refused_on_the_very_next_request(
    world_on_each_database: World, header: str
) -> None:
    world = world_on_each_database
    key = world.a.key
    headers = key.headers if header == "x-api-key" else as_bearer(key)
    assert (await world.client.get(USERS, headers=headers)).status_code == 200

    revoked = await world.client.delete(
        f"/api/v1/api-keys/{key.id}", headers=world.a.manager.headers
    )

    assert revoked.status_code == 204
    refused = await world.client.get(USERS, headers=headers)
    assert_problem(refused, 401)
    assert "www-authenticate" in refused.headers


async def test_a_revoked_key_is_listed_as_revoked(world: World) -> None:
    await world.client.delete(f"/api/v1/api-keys/{world.a.key.id}", headers=world.admin.headers)

    listed = await world.client.get("/api/v1/api-keys", headers=world.a.manager.headers)

    revoked = {k["id"]: k["revoked_at"] for k in listed.json()}
    assert revoked[str(world.a.key.id)] is not None
    assert revoked[str(world.a.spare_key.id)] is None


async def test_a_key_with_a_wrong_secret_is_refused(shared_world_on_each_database: World) -> None:
    world = shared_world_on_each_database
    secret = world.a.key.secret
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")

    assert_problem(await world.client.get(USERS, headers={"X-API-Key": wrong}), 401)


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/api/v1/users"), ("POST", "/api/v1/auth/register"), ("POST", "/api/v1/api-keys")],
    ids=["create-user", "register-user", "create-key"],
)
async def test_a_key_cannot_create_users_or_keys(
    shared_world_on_each_database: World, method: str, path: str
) -> None:
    world = shared_world_on_each_database
    body = {
        "username": "made-by-a-key",
        "email": "made-by-a-key@example.org",
        "full_name": "Made By A Key",
        "role": "technician",
        "password": PASSWORD,
        "name": "made by a key",
        "scopes": KEY_SCOPES,
    }
    wanted = {"name", "scopes"} if path.endswith("api-keys") else set(body) - {"name", "scopes"}

    response = await world.client.request(
        method,
        path,
        json={field: value for field, value in body.items() if field in wanted},
        headers=world.a.key.headers,
    )

    assert_problem(response, 403)


async def test_a_key_past_its_expiry_is_refused(make_served: ServedFactory) -> None:
    clock = ManualClock()
    world = await seed_world(await make_served(clock=clock))
    expires_at = clock.now() + timedelta(minutes=5)
    response = await world.client.post(
        "/api/v1/api-keys",
        json={"name": "short-lived", "scopes": KEY_SCOPES, "expires_at": expires_at.isoformat()},
        headers=world.a.manager.headers,
    )
    headers = {"X-API-Key": response.json()["key"]}
    assert (await world.client.get(USERS, headers=headers)).status_code == 200

    clock.advance(seconds=5 * 60)

    assert_problem(await world.client.get(USERS, headers=headers), 401)


async def test_the_keys_of_a_deactivated_centre_are_refused(world: World) -> None:
    await world.client.patch(
        f"/api/v1/centres/{world.b.id}/deactivate", headers=world.admin.headers
    )

    assert_problem(await world.client.get(USERS, headers=world.b.key.headers), 401)
    assert (await world.client.get(USERS, headers=world.a.key.headers)).status_code == 200
