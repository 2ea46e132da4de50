"""Use cases for API keys: machine credentials of a centre, shown once, stored hashed."""

from __future__ import annotations

from datetime import datetime

import msgspec

from domain.errors import InvalidInput, NotFound
from domain.identity import ApiKey, Principal, Role, Scope
from domain.ports.security import ApiKeySecrets
from domain.ports.services import Clock, IdGenerator
from domain.ports.unit_of_work import UnitOfWorkFactory
from domain.services.access import require_role, require_user, scoped_centre
from domain.services.auditing import Auditor
from domain.values import Id, Page


class CreateApiKey(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    scopes: frozenset[Scope]
    centre_id: Id | None = None
    """Required for admins; centre managers always create keys of their own centre."""
    expires_at: datetime | None = None


class IssuedApiKey(msgspec.Struct, frozen=True, kw_only=True):
    key: ApiKey
    secret: str
    """The full key. It is returned once and cannot be recovered later."""


class ApiKeyService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        secrets: ApiKeySecrets,
        auditor: Auditor,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._secrets = secrets
        self._auditor = auditor

    async def create(self, principal: Principal, command: CreateApiKey) -> IssuedApiKey:
        require_user(principal, action="create API keys")
        require_role(principal, Role.CENTRE_MANAGER, action="create API keys")
        centre_id = command.centre_id if principal.is_admin else principal.centre_id
        if centre_id is None:
            raise InvalidInput("an API key belongs to a centre: give centre_id")
        if not command.name.strip():
            raise InvalidInput("an API key needs a name")
        if not command.scopes:
            raise InvalidInput("an API key needs at least one scope")
        now = self._clock.now()
        if command.expires_at is not None and command.expires_at <= now:
            raise InvalidInput("expires_at must be in the future")
        secret, prefix, secret_hash = self._secrets.generate()
        key = ApiKey(
            id=self._ids.new_id(),
            name=command.name.strip(),
            centre_id=centre_id,
            user_id=principal.id,
            prefix=prefix,
            secret_hash=secret_hash,
            scopes=command.scopes,
            created_at=now,
            expires_at=command.expires_at,
        )
        async with self._uow() as uow:
            centre = await uow.centres.get(centre_id)
            if centre is None or not principal.can_see_centre(centre_id):
                raise NotFound("centre", centre_id)
            await uow.api_keys.add(key)
            await uow.commit()
        await self._auditor.record(
            principal, "api_key.create", "api_key", key.id, centre_id=centre_id
        )
        return IssuedApiKey(key=key, secret=secret)

    async def list(self, principal: Principal, centre_id: Id | None, page: Page) -> list[ApiKey]:
        require_role(principal, Role.CENTRE_MANAGER, action="list API keys")
        centre = scoped_centre(principal, centre_id)
        async with self._uow() as uow:
            return await uow.api_keys.list(centre, page)

    async def revoke(self, principal: Principal, key_id: Id) -> ApiKey:
        async with self._uow() as uow:
            key = await uow.api_keys.get(key_id)
            # tenancy first: another centre's key is not found, whoever asks
            if key is None or not principal.can_see_centre(key.centre_id):
                raise NotFound("API key", key_id)
            require_role(principal, Role.CENTRE_MANAGER, action="revoke API keys")
            if key.revoked:
                return key
            revoked = await uow.api_keys.update(
                msgspec.structs.replace(key, revoked_at=self._clock.now())
            )
            await uow.commit()
        await self._auditor.record(
            principal, "api_key.revoke", "api_key", key_id, centre_id=key.centre_id
        )
        return revoked
