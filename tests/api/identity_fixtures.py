"""A seeded world for the identity acceptance tests: an admin and two centres with their staff.

Everything but the first admin is made through the HTTP API, and everyone signs in through
``POST /api/v1/auth/token``, so seeding already walks the happy path of the identity routes.
Each centre has a manager, a radiologist and a technician (signed in), a second technician
nobody signs in as (``staff``: the one others edit and deactivate), an API key used as a
client (``key``) and a second key to revoke (``spare_key``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx

from adapters.postgres.database import PostgresDatabase
from domain.identity import Role

if TYPE_CHECKING:
    from tests.api.conftest import Served

PASSWORD = "correct horse battery staple"
"""Every seeded user's password (twelve characters or more, as the policy asks)."""

KEY_SCOPES = ["studies:read", "jobs:read"]
PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://hounsfield.dev/problems/"


@dataclass(frozen=True, kw_only=True)
class Member:
    """A user of the world; ``token`` is ``None`` for users nobody signed in as."""

    id: UUID
    username: str
    role: Role
    centre_id: UUID | None
    token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        assert self.token is not None, f"{self.username} never signed in"
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True, kw_only=True)
class Key:
    id: UUID
    secret: str
    centre_id: UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.secret}


@dataclass(frozen=True, kw_only=True)
class CentreStaff:
    id: UUID
    name: str
    manager: Member
    radiologist: Member
    technician: Member
    staff: Member
    key: Key
    spare_key: Key


@dataclass(frozen=True, kw_only=True)
class World:
    served: Served
    admin: Member
    a: CentreStaff
    b: CentreStaff

    @property
    def client(self) -> httpx.AsyncClient:
        return self.served.client


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with this status; returns its body."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["type"].startswith(PROBLEM_TYPE_BASE)
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


async def sign_in(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/token",
        data={"username": username, "password": password, "grant_type": "password"},
    )


async def token_for(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    response = await sign_in(client, username, password)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def create_user(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    username: str,
    role: Role,
    centre_id: UUID | None,
) -> Member:
    response = await client.post(
        "/api/v1/users",
        headers=headers,
        json={
            "username": username,
            "email": f"{username}@example.org",
            "full_name": username.replace("-", " ").title(),
            "role": role.value,
            "password": PASSWORD,
            "centre_id": None if centre_id is None else str(centre_id),
        },
    )
    assert response.status_code == 201, response.text
    return Member(id=UUID(response.json()["id"]), username=username, role=role, centre_id=centre_id)


async def create_key(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    name: str,
    centre_id: UUID,
    scopes: list[str] = KEY_SCOPES,
) -> Key:
    response = await client.post(
        "/api/v1/api-keys",
        headers=headers,
        json={"name": name, "scopes": scopes, "centre_id": str(centre_id)},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return Key(id=UUID(body["id"]), secret=body["key"], centre_id=UUID(body["centre_id"]))


async def signed_in(client: httpx.AsyncClient, member: Member) -> Member:
    return Member(
        id=member.id,
        username=member.username,
        role=member.role,
        centre_id=member.centre_id,
        token=await token_for(client, member.username),
    )


async def _seed_centre(client: httpx.AsyncClient, admin: Member, letter: str) -> CentreStaff:
    name = f"Centre {letter.upper()}"
    response = await client.post("/api/v1/centres", headers=admin.headers, json={"name": name})
    assert response.status_code == 201, response.text
    centre_id = UUID(response.json()["id"])
    people = {
        role: await create_user(
            client, admin.headers, username=f"{letter}-{role.value}", role=role, centre_id=centre_id
        )
        for role in (Role.CENTRE_MANAGER, Role.RADIOLOGIST, Role.TECHNICIAN)
    }
    staff = await create_user(
        client, admin.headers, username=f"{letter}-staff", role=Role.TECHNICIAN, centre_id=centre_id
    )
    return CentreStaff(
        id=centre_id,
        name=name,
        manager=await signed_in(client, people[Role.CENTRE_MANAGER]),
        radiologist=await signed_in(client, people[Role.RADIOLOGIST]),
        technician=await signed_in(client, people[Role.TECHNICIAN]),
        staff=staff,
        key=await create_key(client, admin.headers, name=f"{letter} PACS", centre_id=centre_id),
        spare_key=await create_key(
            client, admin.headers, name=f"{letter} spare", centre_id=centre_id
        ),
    )


_FOREIGN_KEYS = """
SELECT child.relname AS child, parent.relname AS parent
FROM pg_constraint AS k
JOIN pg_class AS child ON child.oid = k.conrelid
JOIN pg_class AS parent ON parent.oid = k.confrelid
JOIN pg_namespace AS n ON n.oid = child.relnamespace
WHERE k.contype = 'f' AND n.nspname = 'public' AND child.relname <> parent.relname
"""
_deletion_order: list[str] = []


async def delete_every_row(database: PostgresDatabase) -> None:
    """Empty every table but the migration ledger, referencing tables first.

    ``DELETE`` of a few rows is some fifty times faster than ``TRUNCATE`` of every table,
    which matters when each test seeds its own world.
    """
    async with database.pool.acquire() as connection:
        if not _deletion_order:
            rows = await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'schema_migrations'"
            )
            edges = [(row["child"], row["parent"]) for row in await connection.fetch(_FOREIGN_KEYS)]
            remaining = {row["tablename"] for row in rows}
            while remaining:
                unreferenced = sorted(
                    table
                    for table in remaining
                    if not any(parent == table and child in remaining for child, parent in edges)
                )
                assert unreferenced, f"foreign keys form a cycle among {sorted(remaining)}"
                _deletion_order.extend(unreferenced)
                remaining -= set(unreferenced)
        async with connection.transaction():
            for table in _deletion_order:
                await connection.execute(f'DELETE FROM "{table}"')


async def emptied(served: Served) -> Served:
    """The same application with its PostgreSQL tables emptied (the test session shares one
    database); an in-memory one starts empty anyway."""
    if isinstance(served.container.database, PostgresDatabase):
        await delete_every_row(served.container.database)
    return served


async def seed_world(served: Served) -> World:
    """An admin (made through the use case, as ``hounsfield users create-admin`` does) who then
    builds two centres with their staff and keys through the API, on an emptied database."""
    await emptied(served)
    user = await served.container.services.users.create_admin(
        username="root", email="root@example.org", password=PASSWORD
    )
    admin = await signed_in(
        served.client,
        Member(id=user.id, username=user.username, role=Role.ADMIN, centre_id=None),
    )
    a = await _seed_centre(served.client, admin, "a")
    b = await _seed_centre(served.client, admin, "b")
    return World(served=served, admin=admin, a=a, b=b)
