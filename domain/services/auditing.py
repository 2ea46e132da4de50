"""Recording who did what to which resource. Never pass patient data as ``detail``."""

from __future__ import annotations

from domain.audit import AuditEvent, Outcome
from domain.identity import Principal
from domain.ports.services import AuditLog, Clock, IdGenerator
from domain.values import Id


class Auditor:
    def __init__(self, *, log: AuditLog, clock: Clock, ids: IdGenerator) -> None:
        self._log = log
        self._clock = clock
        self._ids = ids

    async def record(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: object | None,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        centre_id: Id | None = None,
        detail: str | None = None,
    ) -> None:
        await self._log.record(
            AuditEvent(
                id=self._ids.new_id(),
                at=self._clock.now(),
                actor_kind=principal.kind.value,
                actor_id=principal.id,
                actor_display=principal.display,
                centre_id=centre_id if centre_id is not None else principal.centre_id,
                action=action,
                resource_type=resource_type,
                resource_id=None if resource_id is None else str(resource_id),
                outcome=outcome,
                client_address=principal.client_address,
                request_id=principal.request_id,
                detail=detail,
            )
        )
