"""Reading the audit trail (admins only)."""

from __future__ import annotations

from domain.audit import AuditEvent, AuditQuery
from domain.identity import Principal
from domain.ports.services import AuditLog
from domain.services.access import require_role, require_user
from domain.values import Page


class AuditTrailService:
    def __init__(self, *, log: AuditLog) -> None:
        self._log = log

    async def query(self, principal: Principal, where: AuditQuery, page: Page) -> list[AuditEvent]:
        require_user(principal, action="read the audit trail")
        require_role(principal, action="read the audit trail")
        return await self._log.query(where, page)
