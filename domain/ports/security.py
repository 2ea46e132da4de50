"""Ports for credentials: password hashing and signed access tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import msgspec

from domain.identity import Role
from domain.values import Id


class PasswordHasher(Protocol):
    def hash(self, password: str) -> str: ...

    def verify(self, password: str, password_hash: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...


class TokenClaims(msgspec.Struct, frozen=True, kw_only=True):
    subject: Id
    role: Role
    centre_id: Id | None
    issued_at: datetime
    expires_at: datetime


class TokenService(Protocol):
    def issue(self, claims: TokenClaims) -> str: ...

    def verify(self, token: str) -> TokenClaims:
        """Return the claims of a valid token; raise ``Unauthenticated`` otherwise."""


class ApiKeySecrets(Protocol):
    """Makes and checks API key secrets; only a hash of a key is ever stored."""

    def generate(self) -> tuple[str, str, str]:
        """Return ``(full key shown once, lookup prefix, hash to store)``."""

    def parse_prefix(self, presented: str) -> str | None:
        """The lookup prefix of a presented key, or ``None`` when it is not one of ours."""

    def verify(self, presented: str, stored_hash: str) -> bool: ...
