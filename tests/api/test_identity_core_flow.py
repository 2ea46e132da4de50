"""A first day on an empty installation, through the real API, in memory and on PostgreSQL:
the first admin sets up two centres, a manager staffs one, and everyone sees only their own."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Served, ServedFactory
from tests.api.identity_fixtures import PASSWORD, assert_problem, emptied, token_for


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def person(username: str, role: str, centre_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "username": username,
        "email": f"{username}@example.org",
        "full_name": username.replace(".", " ").title(),
        "role": role,
        "password": PASSWORD,
    }
    if centre_id is not None:
        body["centre_id"] = centre_id
    return body


async def empty_installation(make_served: ServedFactory, options: dict[str, str]) -> Served:
    served = await emptied(await make_served(**options))
    await served.container.services.users.create_admin(
        username="root", email="root@example.org", password=PASSWORD
    )
    return served


async def test_a_first_day_from_the_first_admin_to_a_working_centre(
    make_served: ServedFactory, database_options: dict[str, str]
) -> None:
    served = await empty_installation(make_served, database_options)
    client = served.client
    admin = bearer(await token_for(client, "root"))

    lausanne = await client.post("/api/v1/centres", json={"name": "Lausanne"}, headers=admin)
    geneva = await client.post("/api/v1/centres", json={"name": "Geneva"}, headers=admin)
    assert (lausanne.status_code, geneva.status_code) == (201, 201)
    lausanne_id, geneva_id = lausanne.json()["id"], geneva.json()["id"]
    registered = await client.post(
        "/api/v1/auth/register",
        json=person("maria.manager", "centre_manager", lausanne_id),
        headers=admin,
    )
    assert registered.status_code == 201
    far_away = await client.post(
        "/api/v1/users", json=person("gil.radiologist", "radiologist", geneva_id), headers=admin
    )
    assert far_away.status_code == 201

    manager = bearer(await token_for(client, "maria.manager"))
    me = await client.get("/api/v1/auth/me", headers=manager)
    assert me.status_code == 200
    assert (me.json()["role"], me.json()["centre_id"]) == ("centre_manager", lausanne_id)
    hired = await client.post(
        "/api/v1/users", json=person("tom.technician", "technician"), headers=manager
    )
    assert hired.status_code == 201
    assert hired.json()["centre_id"] == lausanne_id
    contact = await client.patch(
        f"/api/v1/centres/{lausanne_id}",
        json={"contact_phone": "+41 21 000 00 00"},
        headers=manager,
    )
    assert contact.status_code == 200

    technician = bearer(await token_for(client, "tom.technician"))
    colleagues = await client.get("/api/v1/users", headers=technician)
    assert colleagues.status_code == 200
    assert {u["username"] for u in colleagues.json()} == {"maria.manager", "tom.technician"}
    centres = await client.get("/api/v1/centres", headers=technician)
    assert [(c["name"], c["contact_phone"]) for c in centres.json()] == [
        ("Lausanne", "+41 21 000 00 00")
    ]
    stranger = f"/api/v1/users/{far_away.json()['id']}"
    assert_problem(await client.get(stranger, headers=technician), 404)
    assert_problem(await client.patch(stranger, json={"full_name": "X"}, headers=manager), 404)
    assert_problem(await client.get(f"/api/v1/centres/{geneva_id}", headers=manager), 404)

    issued = await client.post(
        "/api/v1/api-keys", json={"name": "modality", "scopes": ["studies:write"]}, headers=manager
    )
    assert issued.status_code == 201
    machine = {"X-API-Key": issued.json()["key"]}
    seen_by_key = await client.get("/api/v1/users", headers=machine)
    assert {u["centre_id"] for u in seen_by_key.json()} == {lausanne_id}

    everyone = await client.get("/api/v1/users", headers=admin)
    assert len(everyone.json()) == 4


async def test_a_username_is_taken_once(
    make_served: ServedFactory, database_options: dict[str, str]
) -> None:
    served = await empty_installation(make_served, database_options)
    admin = bearer(await token_for(served.client, "root"))
    centre = await served.client.post("/api/v1/centres", json={"name": "Bern"}, headers=admin)
    body = person("sam.same", "technician", centre.json()["id"])
    assert (await served.client.post("/api/v1/users", json=body, headers=admin)).status_code == 201

    again = await served.client.post("/api/v1/users", json=body, headers=admin)

    assert_problem(again, 409)


async def test_a_weak_password_or_a_malformed_body_is_refused_with_a_problem(
    make_served: ServedFactory,
) -> None:
    served = await empty_installation(make_served, {})
    admin = bearer(await token_for(served.client, "root"))
    weak = {**person("ada.admin", "admin"), "password": "short"}

    assert_problem(await served.client.post("/api/v1/users", json=weak, headers=admin), 422)
    assert_problem(
        await served.client.post("/api/v1/users", json={"username": 3}, headers=admin), 400
    )
