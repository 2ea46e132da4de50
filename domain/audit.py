"""Audit trail of every access to patient data and every sign-in. It never holds patient names."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from domain.values import Id


class Outcome(enum.StrEnum):
    SUCCESS = "success"
    DENIED = "denied"
    FAILURE = "failure"


class AuditEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    at: datetime
    actor_kind: str
    """``user``, ``api_key`` or ``system``."""
    actor_id: Id | None
    actor_display: str
    centre_id: Id | None
    action: str
    """A verb on a resource, e.g. ``study.read``, ``report.verify``, ``auth.login``."""
    resource_type: str
    resource_id: str | None
    outcome: Outcome
    client_address: str | None = None
    request_id: str | None = None
    detail: str | None = None
    """Free text for operators; callers must never put patient data here."""


class AuditQuery(msgspec.Struct, frozen=True, kw_only=True):
    actor_id: Id | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    centre_id: Id | None = None
    since: datetime | None = None
