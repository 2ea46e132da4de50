"""Controllers for sign-in, users, centres, API keys and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody, QueryParameter

from domain.audit import AuditQuery
from domain.errors import PermissionDenied
from domain.identity import Principal, PrincipalKind, Role
from domain.ports.repositories import CentreFilter, UserFilter
from domain.services.api_keys import CreateApiKey
from domain.services.centres import CreateCentre, UpdateCentre
from domain.services.users import CreateUser, UpdateUser
from domain.values import MAX_PAGE_SIZE, Page
from entrypoints.bootstrap import Container
from entrypoints.http.dependencies import provide_container
from entrypoints.http.identity.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    AuditEventRead,
    CentreCreate,
    CentreRead,
    CentreUpdate,
    TokenForm,
    TokenRead,
    TokenUser,
    UserCreate,
    UserRead,
    UserUpdate,
    read_as,
)
from entrypoints.http.security import provide_principal

Skip = Annotated[int, QueryParameter(ge=0, description="Items to pass over")]
Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="At most this many items")
]

DEPENDENCIES = {
    "container": Provide(provide_container, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
}


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]
    dependencies = DEPENDENCIES

    @post(
        "/token",
        operation_id="createAccessToken",
        summary="Sign in with username and password (OAuth2 password grant)",
        status_code=200,
        exclude_from_auth=True,
    )
    async def token(
        self,
        request: Request[Any, Any, Any],
        container: NamedDependency[Container],
        data: Annotated[TokenForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> TokenRead:
        client = request.client.host if request.client else None
        signed = await container.services.auth.sign_in(
            data.username, data.password, client_address=client
        )
        return TokenRead(
            access_token=signed.access_token,
            token_type="bearer",
            expires_in=signed.expires_in_s,
            user=read_as(signed.user, TokenUser),
        )

    @get("/me", operation_id="getCurrentUser", summary="The signed-in user")
    async def me(
        self, container: NamedDependency[Container], principal: NamedDependency[Principal]
    ) -> UserRead:
        if principal.id is None or principal.kind is not PrincipalKind.USER:
            raise PermissionDenied("an API key has no user profile; sign in as a user")
        return read_as(await container.services.users.get(principal, principal.id), UserRead)

    @post("/register", operation_id="registerUser", summary="Register a user (admin, manager)")
    async def register(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[UserCreate],
    ) -> UserRead:
        command = msgspec.convert(msgspec.structs.asdict(data), CreateUser)
        return read_as(await container.services.users.create(principal, command), UserRead)


class UserController(Controller):
    path = "/users"
    tags = ["users"]
    dependencies = DEPENDENCIES

    @get("/", operation_id="listUsers", summary="Users visible to the caller")
    async def list_users(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        role: FromQuery[Role | None] = None,
        centre_id: FromQuery[UUID | None] = None,
        active: FromQuery[bool | None] = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> list[UserRead]:
        where = UserFilter(role=role, centre_id=centre_id, active=active)
        users = await container.services.users.list(principal, where, Page(skip=skip, limit=limit))
        return [read_as(u, UserRead) for u in users]

    @post("/", operation_id="createUser", summary="Register a user (admin, manager)")
    async def create_user(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[UserCreate],
    ) -> UserRead:
        command = msgspec.convert(msgspec.structs.asdict(data), CreateUser)
        return read_as(await container.services.users.create(principal, command), UserRead)

    @get("/{user_id:uuid}", operation_id="getUser", summary="One user")
    async def get_user(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        user_id: FromPath[UUID],
    ) -> UserRead:
        return read_as(await container.services.users.get(principal, user_id), UserRead)

    @patch("/{user_id:uuid}", operation_id="updateUser", summary="Change a user")
    async def update_user(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        user_id: FromPath[UUID],
        data: JSONBody[UserUpdate],
    ) -> UserRead:
        command = msgspec.convert(msgspec.to_builtins(data), UpdateUser)
        return read_as(await container.services.users.update(principal, user_id, command), UserRead)

    @patch("/{user_id:uuid}/deactivate", operation_id="deactivateUser", summary="Deactivate a user")
    async def deactivate_user(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        user_id: FromPath[UUID],
    ) -> UserRead:
        return read_as(await container.services.users.deactivate(principal, user_id), UserRead)


class CentreController(Controller):
    path = "/centres"
    tags = ["centres"]
    dependencies = DEPENDENCIES

    @get("/", operation_id="listCentres", summary="Centres visible to the caller")
    async def list_centres(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        active: FromQuery[bool | None] = None,
        name: FromQuery[str | None] = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> list[CentreRead]:
        where = CentreFilter(active=active, name_contains=name)
        found = await container.services.centres.list(
            principal, where, Page(skip=skip, limit=limit)
        )
        return [read_as(c, CentreRead) for c in found]

    @post("/", operation_id="createCentre", summary="Create a centre (admin)")
    async def create_centre(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[CentreCreate],
    ) -> CentreRead:
        command = msgspec.convert(msgspec.structs.asdict(data), CreateCentre)
        return read_as(await container.services.centres.create(principal, command), CentreRead)

    @get("/{centre_id:uuid}", operation_id="getCentre", summary="One centre")
    async def get_centre(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        centre_id: FromPath[UUID],
    ) -> CentreRead:
        return read_as(await container.services.centres.get(principal, centre_id), CentreRead)

    @patch("/{centre_id:uuid}", operation_id="updateCentre", summary="Change a centre")
    async def update_centre(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        centre_id: FromPath[UUID],
        data: JSONBody[CentreUpdate],
    ) -> CentreRead:
        command = msgspec.convert(msgspec.to_builtins(data), UpdateCentre)
        updated = await container.services.centres.update(principal, centre_id, command)
        return read_as(updated, CentreRead)

    @patch(
        "/{centre_id:uuid}/deactivate",
        operation_id="deactivateCentre",
        summary="Deactivate a centre (admin)",
    )
    async def deactivate_centre(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        centre_id: FromPath[UUID],
    ) -> CentreRead:
        return read_as(
            await container.services.centres.deactivate(principal, centre_id), CentreRead
        )


class ApiKeyController(Controller):
    path = "/api-keys"
    tags = ["api-keys"]
    dependencies = DEPENDENCIES

    @post(
        "/",
        operation_id="createApiKey",
        summary="Create an API key; the full key is in this response only",
    )
    async def create_key(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[ApiKeyCreate],
    ) -> ApiKeyCreated:
        issued = await container.services.api_keys.create(
            principal,
            CreateApiKey(
                name=data.name,
                scopes=frozenset(data.scopes),
                centre_id=data.centre_id,
                expires_at=data.expires_at,
            ),
        )
        fields = msgspec.structs.asdict(read_as(issued.key, ApiKeyRead))
        return ApiKeyCreated(**fields, key=issued.secret)

    @get("/", operation_id="listApiKeys", summary="API keys of the caller's centre")
    async def list_keys(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        centre_id: FromQuery[UUID | None] = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> list[ApiKeyRead]:
        keys = await container.services.api_keys.list(
            principal, centre_id, Page(skip=skip, limit=limit)
        )
        return [read_as(k, ApiKeyRead) for k in keys]

    @delete(
        "/{key_id:uuid}",
        operation_id="revokeApiKey",
        summary="Revoke an API key; it stops working at once",
    )
    async def revoke_key(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        key_id: FromPath[UUID],
    ) -> None:
        await container.services.api_keys.revoke(principal, key_id)


class AuditController(Controller):
    path = "/audit"
    tags = ["audit"]
    dependencies = DEPENDENCIES

    @get("/", operation_id="listAuditEvents", summary="The audit trail, newest first (admin)")
    async def list_events(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        actor: FromQuery[UUID | None] = None,
        resource: Annotated[
            str | None,
            QueryParameter(description="A resource type ('study'), or type and id ('study:<id>')"),
        ] = None,
        centre_id: FromQuery[UUID | None] = None,
        since: FromQuery[datetime | None] = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> list[AuditEventRead]:
        resource_type, _, resource_id = (resource or "").partition(":")
        where = AuditQuery(
            actor_id=actor,
            resource_type=resource_type or None,
            resource_id=resource_id or None,
            centre_id=centre_id,
            since=since,
        )
        events = await container.services.audit_trail.query(
            principal, where, Page(skip=skip, limit=limit)
        )
        return [read_as(e, AuditEventRead) for e in events]


IDENTITY_CONTROLLERS = [
    AuthController,
    UserController,
    CentreController,
    ApiKeyController,
    AuditController,
]
