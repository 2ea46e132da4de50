"""API schemas of identity resources: separate from the domain entities, never a secret."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

import msgspec

from domain.identity import Role, Scope
from domain.values import Id

T = TypeVar("T")

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Password = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


def read_as(entity: object, schema: type[T]) -> T:
    return msgspec.convert(entity, schema, from_attributes=True)


class TokenForm(msgspec.Struct, kw_only=True):
    """OAuth2 password grant (RFC 6749 section 4.3), form-encoded."""

    username: Annotated[str, msgspec.Meta(max_length=64)]
    password: Password
    grant_type: str | None = None
    scope: str | None = None


class TokenUser(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    username: str
    full_name: str
    role: Role
    centre_id: Id | None


class TokenRead(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    token_type: str
    expires_in: int
    user: TokenUser


class UserRead(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    username: str
    email: str
    full_name: str
    role: Role
    centre_id: Id | None
    active: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


class UserCreate(msgspec.Struct, frozen=True, kw_only=True):
    username: Annotated[str, msgspec.Meta(max_length=64)]
    email: Annotated[str, msgspec.Meta(max_length=320)]
    full_name: Name
    role: Role
    password: Password
    centre_id: Id | None = None


class UserUpdate(msgspec.Struct, frozen=True, kw_only=True):
    email: Annotated[str, msgspec.Meta(max_length=320)] | msgspec.UnsetType = msgspec.UNSET
    full_name: Name | msgspec.UnsetType = msgspec.UNSET
    role: Role | msgspec.UnsetType = msgspec.UNSET
    password: Password | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class CentreRead(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    name: str
    contact_email: str | None
    contact_phone: str | None
    address: str | None
    active: bool
    auto_invoice: bool
    deidentify_at_ingest: bool
    created_at: datetime
    updated_at: datetime


class CentreCreate(msgspec.Struct, frozen=True, kw_only=True):
    name: Name
    contact_email: str | None = None
    contact_phone: str | None = None
    address: str | None = None
    auto_invoice: bool = False
    deidentify_at_ingest: bool = False


class CentreUpdate(msgspec.Struct, frozen=True, kw_only=True):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    contact_email: str | msgspec.UnsetType | None = msgspec.UNSET
    contact_phone: str | msgspec.UnsetType | None = msgspec.UNSET
    address: str | msgspec.UnsetType | None = msgspec.UNSET
    auto_invoice: bool | msgspec.UnsetType = msgspec.UNSET
    deidentify_at_ingest: bool | msgspec.UnsetType = msgspec.UNSET
    active: bool | msgspec.UnsetType = msgspec.UNSET


class ApiKeyRead(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    name: str
    centre_id: Id
    user_id: Id | None
    prefix: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreate(msgspec.Struct, frozen=True, kw_only=True):
    name: Name
    scopes: Annotated[list[Scope], msgspec.Meta(min_length=1)]
    centre_id: Id | None = None
    expires_at: datetime | None = None


class ApiKeyCreated(ApiKeyRead, frozen=True, kw_only=True):
    key: str
    """The full key: shown this once, never again."""


class AuditEventRead(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    at: datetime
    actor_kind: str
    actor_id: Id | None
    actor_display: str
    centre_id: Id | None
    action: str
    resource_type: str
    resource_id: str | None
    outcome: str
    client_address: str | None
    request_id: str | None
    detail: str | None
