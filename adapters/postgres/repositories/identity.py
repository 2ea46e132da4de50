"""Centres, users and API keys in PostgreSQL."""

from __future__ import annotations

from typing import Any

import msgspec

from adapters.postgres.repositories._sql import (
    Where,
    insert,
    to_struct,
    update_plain,
    update_versioned,
)
from adapters.postgres.session import Session
from domain.identity import ApiKey, Centre, User
from domain.ports.repositories import CentreFilter, UserFilter
from domain.values import Id, Page

_CENTRE_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(Centre))
_USER_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(User))
_API_KEY_COLUMNS = ", ".join(f.name for f in msgspec.structs.fields(ApiKey))


class PostgresCentreRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, centre: Centre) -> None:
        await insert(self._connection, "centres", "centre", msgspec.structs.asdict(centre))

    async def get(self, centre_id: Id) -> Centre | None:
        row = await self._connection.fetchrow(
            f"SELECT {_CENTRE_COLUMNS} FROM centres WHERE id = $1", centre_id
        )
        return None if row is None else to_struct(row, Centre)

    async def update(self, centre: Centre) -> Centre:
        values = msgspec.structs.asdict(centre)
        await update_versioned(
            self._connection, "centres", "centre", centre.id, centre.version, values
        )
        return msgspec.structs.replace(centre, version=centre.version + 1)

    async def list(self, where: CentreFilter, page: Page) -> list[Centre]:
        """Ordered by name."""
        w = Where()
        w.equal("active", where.active)
        w.contains("name", where.name_contains)
        rows = await self._connection.fetch(
            f"SELECT {_CENTRE_COLUMNS} FROM centres {w.sql()} ORDER BY name, id {w.page(page)}",
            *w.args,
        )
        return [to_struct(row, Centre) for row in rows]


def _user_where(where: UserFilter) -> Where:
    w = Where()
    w.equal("role", where.role)
    w.equal("centre_id", where.centre_id)
    w.equal("active", where.active)
    return w


class PostgresUserRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, user: User) -> None:
        await insert(self._connection, "users", "user", msgspec.structs.asdict(user))

    async def get(self, user_id: Id) -> User | None:
        row = await self._connection.fetchrow(
            f"SELECT {_USER_COLUMNS} FROM users WHERE id = $1", user_id
        )
        return None if row is None else to_struct(row, User)

    async def get_by_username(self, username: str) -> User | None:
        row = await self._connection.fetchrow(
            f"SELECT {_USER_COLUMNS} FROM users WHERE username = $1", username
        )
        return None if row is None else to_struct(row, User)

    async def update(self, user: User) -> User:
        values = msgspec.structs.asdict(user)
        await update_versioned(self._connection, "users", "user", user.id, user.version, values)
        return msgspec.structs.replace(user, version=user.version + 1)

    async def list(self, where: UserFilter, page: Page) -> list[User]:
        """Ordered by username."""
        w = _user_where(where)
        rows = await self._connection.fetch(
            f"SELECT {_USER_COLUMNS} FROM users {w.sql()} ORDER BY username, id {w.page(page)}",
            *w.args,
        )
        return [to_struct(row, User) for row in rows]

    async def count(self, where: UserFilter) -> int:
        w = _user_where(where)
        count: int = await self._connection.fetchval(
            f"SELECT count(*) FROM users {w.sql()}", *w.args
        )
        return count


def _api_key_values(key: ApiKey) -> dict[str, Any]:
    values = msgspec.structs.asdict(key)
    values["scopes"] = sorted(key.scopes)
    return values


class PostgresApiKeyRepository:
    def __init__(self, connection: Session) -> None:
        self._connection = connection

    async def add(self, key: ApiKey) -> None:
        await insert(self._connection, "api_keys", "API key", _api_key_values(key))

    async def get(self, key_id: Id) -> ApiKey | None:
        row = await self._connection.fetchrow(
            f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE id = $1", key_id
        )
        return None if row is None else to_struct(row, ApiKey)

    async def get_by_prefix(self, prefix: str) -> ApiKey | None:
        row = await self._connection.fetchrow(
            f"SELECT {_API_KEY_COLUMNS} FROM api_keys WHERE prefix = $1", prefix
        )
        return None if row is None else to_struct(row, ApiKey)

    async def update(self, key: ApiKey) -> ApiKey:
        await update_plain(self._connection, "api_keys", "API key", key.id, _api_key_values(key))
        return key

    async def list(self, centre_id: Id | None, page: Page) -> list[ApiKey]:
        """Oldest first."""
        w = Where()
        w.equal("centre_id", centre_id)
        rows = await self._connection.fetch(
            f"SELECT {_API_KEY_COLUMNS} FROM api_keys {w.sql()} "
            f"ORDER BY created_at, id {w.page(page)}",
            *w.args,
        )
        return [to_struct(row, ApiKey) for row in rows]
