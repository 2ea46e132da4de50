"""In-memory audit log."""

from __future__ import annotations

from adapters.memory.state import matches
from domain.audit import AuditEvent, AuditQuery
from domain.values import Page


class MemoryAuditLog:
    def __init__(self) -> None:
        self._events: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        self._events.append(event)

    async def query(self, where: AuditQuery, page: Page) -> list[AuditEvent]:
        found = [
            (position, e)
            for position, e in enumerate(self._events)
            if matches(e.actor_id, where.actor_id)
            and matches(e.resource_type, where.resource_type)
            and matches(e.resource_id, where.resource_id)
            and matches(e.centre_id, where.centre_id)
            and (where.since is None or e.at >= where.since)
        ]
        # newest first; events of the same instant in reverse order of recording
        found.sort(key=lambda item: (item[1].at, item[0]), reverse=True)
        return [e for _, e in found[page.skip : page.skip + page.limit]]
