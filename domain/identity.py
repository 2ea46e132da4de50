"""Centres (tenants), users, API keys and the Principal every use case acts for."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from domain.values import Id


class Role(enum.StrEnum):
    ADMIN = "admin"
    RADIOLOGIST = "radiologist"
    TECHNICIAN = "technician"
    CENTRE_MANAGER = "centre_manager"


class Centre(msgspec.Struct, frozen=True, kw_only=True):
    """A diagnostic centre: the tenant boundary. Its data is never visible to another centre."""

    id: Id
    name: str
    contact_email: str | None = None
    contact_phone: str | None = None
    address: str | None = None
    active: bool = True
    auto_invoice: bool = False
    deidentify_at_ingest: bool = False
    """Uploads are stored de-identified (PS3.15 Basic Profile), never as received."""
    created_at: datetime
    updated_at: datetime
    version: int = 1


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A person who signs in. Admins have no centre; everyone else belongs to exactly one."""

    id: Id
    username: str
    email: str
    full_name: str
    role: Role
    centre_id: Id | None
    password_hash: str
    active: bool = True
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None = None
    version: int = 1

    def __post_init__(self) -> None:
        if self.role is Role.ADMIN and self.centre_id is not None:
            raise ValueError("an admin belongs to no centre (centre_id must be None)")
        if self.role is not Role.ADMIN and self.centre_id is None:
            raise ValueError(f"a {self.role.value} must belong to a centre (centre_id is None)")


class Scope(enum.StrEnum):
    """What an API key may do. Users get scopes from their role."""

    STUDIES_READ = "studies:read"
    STUDIES_WRITE = "studies:write"
    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    JOBS_REPORT = "jobs:report"
    REPORTS_READ = "reports:read"
    REPORTS_WRITE = "reports:write"
    BILLING_READ = "billing:read"
    BILLING_WRITE = "billing:write"


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    """A credential for a machine client. Only a hash of the secret is ever stored."""

    id: Id
    name: str
    centre_id: Id
    user_id: Id | None
    prefix: str
    """The first characters of the key, shown in listings so a key can be recognised."""
    secret_hash: str
    scopes: frozenset[Scope]
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class PrincipalKind(enum.StrEnum):
    USER = "user"
    API_KEY = "api_key"
    SYSTEM = "system"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is acting: a user, an API key, or the platform itself (workers, sweeps).

    Use cases take a Principal explicitly and decide permission and tenant scope from it,
    so embedding teams get the same guarantees as HTTP clients.
    """

    kind: PrincipalKind
    id: Id | None
    role: Role | None
    centre_id: Id | None
    scopes: frozenset[Scope] = frozenset()
    display: str = ""
    """A name for audit trails: a username or key prefix; never patient data."""
    client_address: str | None = None
    """Where the request came from, for the audit trail."""
    request_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind is PrincipalKind.SYSTEM or self.role is Role.ADMIN

    def can_see_centre(self, centre_id: Id | None) -> bool:
        """Tenant rule: admins see every centre, everyone else only their own."""
        return self.is_admin or (centre_id is not None and centre_id == self.centre_id)

    def has_scope(self, scope: Scope) -> bool:
        """Users act with their role's permissions; keys only with the scopes they were given."""
        return self.kind is not PrincipalKind.API_KEY or scope in self.scopes

    def has_role(self, *roles: Role) -> bool:
        return self.kind is PrincipalKind.SYSTEM or self.role in roles

    def with_origin(self, *, client_address: str | None, request_id: str | None) -> Principal:
        return msgspec.structs.replace(self, client_address=client_address, request_id=request_id)


SYSTEM_PRINCIPAL = Principal(
    kind=PrincipalKind.SYSTEM, id=None, role=None, centre_id=None, display="system"
)
