"""Contract: the audit trail records every access and answers filtered, newest first."""

from __future__ import annotations

from datetime import timedelta

from domain.audit import AuditQuery, Outcome
from domain.ports import AuditLog
from domain.values import Page
from tests.contract.conftest import Make


async def test_a_recorded_event_reads_back_unchanged(audit_log: AuditLog, make: Make):
    event = make.audit_event(
        outcome=Outcome.DENIED,
        client_address="10.0.0.7",
        request_id="req-42",
        detail="scope studies:write missing",
    )
    system = make.audit_event(
        actor_kind="system", actor_id=None, centre_id=None, resource_id=None, action="jobs.recover"
    )

    await audit_log.record(event)
    await audit_log.record(system)

    assert await audit_log.query(AuditQuery(), Page()) == [system, event]


async def test_audit_queries_filter_by_actor_resource_centre_and_time(
    audit_log: AuditLog, make: Make
):
    actor, centre = make.id(), make.id()
    by_actor = make.audit_event(actor_id=actor)
    on_report = make.audit_event(resource_type="report", resource_id="r-1", action="report.verify")
    in_centre = make.audit_event(centre_id=centre, actor_id=actor)
    later = make.audit_event(resource_type="report", resource_id="r-2")
    for event in (by_actor, on_report, in_centre, later):
        await audit_log.record(event)

    async def ids(where: AuditQuery, page: Page | None = None) -> list:
        return [e.id for e in await audit_log.query(where, page or Page())]

    assert await ids(AuditQuery(actor_id=actor)) == [in_centre.id, by_actor.id]
    assert await ids(AuditQuery(resource_type="report")) == [later.id, on_report.id]
    assert await ids(AuditQuery(resource_type="report", resource_id="r-1")) == [on_report.id]
    assert await ids(AuditQuery(centre_id=centre)) == [in_centre.id]
    assert await ids(AuditQuery(since=in_centre.at)) == [later.id, in_centre.id]
    assert await ids(AuditQuery(since=later.at + timedelta(seconds=1))) == []
    assert await ids(AuditQuery(actor_id=make.id())) == []


async def test_audit_events_page_newest_first(audit_log: AuditLog, make: Make):
    events = [make.audit_event() for _ in range(5)]
    for event in reversed(events):  # recording order does not decide the listing order
        await audit_log.record(event)

    first = await audit_log.query(AuditQuery(), Page(limit=2))
    rest = await audit_log.query(AuditQuery(), Page(skip=2, limit=10))

    assert [e.id for e in first + rest] == [e.id for e in reversed(events)]
