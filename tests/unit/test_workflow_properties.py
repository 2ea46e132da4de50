"""Property tests of the workflow and invoice state machines, driven through the use cases.

Hypothesis plays random sequences of actions by random people (including another centre's
staff and the wrong roles) and checks after every step that the study only moved along its
table, that a refused action changed nothing, that verified records never change, and that
invoices stay one per study and gap-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from adapters.reports import TemplateReportWriter
from adapters.system import UuidIdGenerator
from domain.billing import INVOICE_TRANSITIONS, Currency, Invoice, InvoiceStatus
from domain.errors import DomainError, NotFound
from domain.identity import Principal, Role
from domain.ports.repositories import InvoiceFilter, ReportFilter
from domain.reports import Report, ReportStatus, ReportType
from domain.services.ai_reports import AiReportDrafter
from domain.services.billing import BillingService, CreateInvoice, CreatePrice
from domain.services.reports import CreateReport, EditReport, ReportService
from domain.services.users import CreateUser
from domain.services.workflow import AssignStudy, WorkflowService
from domain.studies import STUDY_TRANSITIONS, Modality, Study, StudyStatus, new_study_code
from domain.values import Page
from tests.unit.identity_world import PASSWORD, World, build_world
from tests.unit.test_workflow_use_cases import an_analysis_result

# repeated names are drawn more often, so that most runs get far along the workflow
ASSIGNERS = ["manager-a", "manager-a", "technician-a", "root", "radiologist-a", "technician-b"]
TARGETS = ["radiologist-a", "radiologist-a", "radiologist-a", "radiologist-a2", "radiologist-b"]
READERS = ["radiologist-a"] * 5 + ["radiologist-a2", "manager-a", "root", "technician-b"]
SETTINGS = settings(
    max_examples=200,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Workflow:
    world: World
    workflow: WorkflowService
    reports: ReportService
    billing: BillingService
    drafts: AiReportDrafter

    def as_(self, name: str) -> Principal:
        return self.world.as_(name)


@pytest.fixture(scope="module")
async def flow() -> Workflow:
    """Centre A invoices on verification and prices CT; it has two radiologists."""
    world = await build_world()
    ids, uow = UuidIdGenerator(), world.db.unit_of_work
    world.people["radiologist-a2"] = await world.users.create(
        world.admin,
        CreateUser(
            username="radiologist-a2",
            email="radiologist-a2@example.org",
            full_name="Second Radiologist",
            role=Role.RADIOLOGIST,
            password=PASSWORD,
            centre_id=world.centre_a,
        ),
    )
    from domain.services.centres import UpdateCentre

    await world.centres.update(world.admin, world.centre_a, UpdateCentre(auto_invoice=True))
    billing = BillingService(uow=uow, clock=world.clock, ids=ids, auditor=world.auditor)
    await billing.create_price(
        world.admin,
        CreatePrice(
            centre_id=world.centre_a,
            modality=Modality.CT,
            amount=Decimal("99.90"),
            currency=Currency.AED,
        ),
    )
    return Workflow(
        world=world,
        workflow=WorkflowService(uow=uow, clock=world.clock, auditor=world.auditor),
        reports=ReportService(uow=uow, clock=world.clock, ids=ids, auditor=world.auditor),
        billing=billing,
        drafts=AiReportDrafter(
            uow=uow,
            writer=TemplateReportWriter(),
            clock=world.clock,
            ids=ids,
            auditor=world.auditor,
        ),
    )


async def new_study(flow: Workflow) -> Study:
    world = flow.world
    now = world.clock.now()
    study = Study(
        id=UuidIdGenerator().new_id(),
        centre_id=world.centre_a,
        code=new_study_code(),
        study_instance_uid=f"2.25.{UuidIdGenerator().new_id().int}",
        modality=Modality.CT,
        created_at=now,
        updated_at=now,
    )
    async with world.db.unit_of_work() as uow:
        await uow.studies.add(study)
        await uow.commit()
    return study


async def snapshot(flow: Workflow, study: Study) -> tuple[Study, list[Report], list[Invoice]]:
    async with flow.world.db.unit_of_work() as uow:
        stored = await uow.studies.get(study.id)
        reports = await uow.reports.list(ReportFilter(study_id=study.id), Page(limit=1000))
        invoices = await uow.invoices.list(InvoiceFilter(study_id=study.id), Page(limit=1000))
    assert stored is not None
    return stored, reports, invoices


SKIPPED = object()
"""An edit or verification drawn before the study had any report: nothing to act on."""

actions = st.one_of(
    st.tuples(st.just("assign"), st.sampled_from(ASSIGNERS), st.sampled_from(TARGETS)),
    st.tuples(st.sampled_from(["review", "create", "addendum"]), st.sampled_from(READERS)),
    st.tuples(st.sampled_from(["edit", "verify"]), st.sampled_from(READERS), st.integers(0, 3)),
    st.tuples(st.just("analysis")),
)


async def perform(flow: Workflow, study: Study, reports: list[Report], action: tuple[Any, ...]):
    kind = action[0]
    if kind == "analysis":
        return await flow.drafts.draft_for(an_analysis_result(study))
    actor = flow.as_(action[1])
    if kind == "assign":
        target = flow.world.people[action[2]].id
        return await flow.workflow.assign(actor, study.id, AssignStudy(radiologist_id=target))
    if kind == "review":
        return await flow.workflow.open_review(actor, study.id)
    if kind == "create":
        command = CreateReport(study_id=study.id, findings="Nodule.", impression="Follow up.")
        return await flow.reports.create(actor, command)
    if kind == "addendum":
        verified = [r for r in reports if r.status is ReportStatus.VERIFIED]
        amends = verified[0].id if verified else reports[0].id if reports else study.id
        command = CreateReport(
            study_id=study.id, findings="Addendum.", impression="Same.", amends_report_id=amends
        )
        return await flow.reports.create(actor, command)
    if not reports:
        return SKIPPED
    report = reports[action[2] % len(reports)]
    if kind == "edit":
        return await flow.reports.edit(actor, report.id, EditReport(findings=f"Edited {action}."))
    return await flow.reports.verify(actor, report.id)


U, A, R, G, V = (
    StudyStatus.UPLOADED,
    StudyStatus.ASSIGNED,
    StudyStatus.IN_REVIEW,
    StudyStatus.REPORT_GENERATED,
    StudyStatus.VERIFIED,
)
MOVES: dict[str, set[tuple[StudyStatus, StudyStatus]]] = {
    "assign": {(U, A), (A, A), (R, A)},
    "review": {(A, R)},
    "create": {(A, G), (R, G), (V, V)},  # (V, V): an addendum written by "create" never moves
    "addendum": {(V, V)},
    # editing or verifying an AI draft adopts it: the report is then written (A/R -> G)
    "edit": {(U, U), (A, A), (R, R), (G, G), (V, V), (A, G), (R, G)},
    "verify": {(G, V), (A, V), (R, V), (V, V)},
    "analysis": {(s, s) for s in StudyStatus},
}
"""Each action's possible (before, after) study statuses when it succeeds."""


def test_every_expected_move_is_a_path_along_the_study_table():
    def path(before: StudyStatus, after: StudyStatus, steps: int) -> bool:
        return before is after or (
            steps > 0 and any(path(s, after, steps - 1) for s in STUDY_TRANSITIONS.allowed(before))
        )

    for moves in MOVES.values():
        for before, after in moves:
            assert path(before, after, 3), (before, after)


@SETTINGS
@given(steps=st.lists(actions, min_size=6, max_size=24))
async def test_the_study_and_its_reports_only_move_through_the_workflow(
    flow: Workflow, steps: list[tuple[Any, ...]]
):
    study = await new_study(flow)
    for action in steps:
        before, reports, invoices = await snapshot(flow, study)
        event(f"acting on a study in {before.status.value}")
        try:
            outcome = await perform(flow, before, reports, action)
        except DomainError as refused:
            after, reports_after, invoices_after = await snapshot(flow, study)
            assert (after, reports_after, invoices_after) == (before, reports, invoices), action
            if action[0] != "analysis" and action[1] == "technician-b":
                assert isinstance(refused, NotFound)
            continue
        if outcome is SKIPPED:
            continue
        after, reports_after, invoices_after = await snapshot(flow, study)
        assert (before.status, after.status) in MOVES[action[0]], (
            before.status,
            after.status,
            action,
        )
        assert action[0] == "analysis" or action[1] != "technician-b"
        # what was verified stays exactly as it was
        if before.status is StudyStatus.VERIFIED:
            assert after.status is StudyStatus.VERIFIED
            assert after.assigned_radiologist_id == before.assigned_radiologist_id
        now_by_id = {r.id: r for r in reports_after}
        for old in reports:
            if old.status is ReportStatus.VERIFIED:
                assert now_by_id[old.id] == old
        # the study's status says what its reports are
        finals = [
            r
            for r in reports_after
            if r.type is not ReportType.ADDENDUM and r.status is ReportStatus.VERIFIED
        ]
        assert len(finals) == (1 if after.status is StudyStatus.VERIFIED else 0)
        if after.status is not StudyStatus.UPLOADED:
            assignee = next(
                p for p in flow.world.people.values() if p.id == after.assigned_radiologist_id
            )
            assert (assignee.role, assignee.centre_id) == (Role.RADIOLOGIST, study.centre_id)
        for report in reports_after:
            if report.status is ReportStatus.VERIFIED:
                assert report.verified_by is not None and report.author_id is not None
        # the centre invoices every verified study once, at its price
        active = [i for i in invoices_after if i.status is not InvoiceStatus.CANCELLED]
        assert len(active) == (1 if after.status is StudyStatus.VERIFIED else 0)
        assert all(i.total.amount == Decimal("99.90") for i in active)


invoice_steps = st.lists(
    st.tuples(
        st.sampled_from(["status", "status", "issue"]),
        st.sampled_from(["root", "manager-a", "technician-b"]),
        st.sampled_from(list(InvoiceStatus)),
    ),
    min_size=1,
    max_size=12,
)


@SETTINGS
@given(steps=invoice_steps)
async def test_invoices_move_pending_to_paid_or_cancelled_only_and_stay_gap_free(
    flow: Workflow, steps: list[tuple[str, str, InvoiceStatus]]
):
    study = await new_study(flow)
    admin = flow.as_("root")
    current = await flow.billing.create_invoice(admin, CreateInvoice(study_id=study.id))
    for kind, who, status in steps:
        actor = flow.as_(who)
        try:
            if kind == "issue":
                current = await flow.billing.create_invoice(actor, CreateInvoice(study_id=study.id))
                assert who == "root"
                continue
            stored = await flow.billing.set_invoice_status(actor, current.id, status)
        except DomainError as refused:
            if who == "technician-b":
                assert isinstance(refused, NotFound)
            unchanged = await flow.billing.get_invoice(admin, current.id)
            assert unchanged == current
            continue
        assert who == "root"
        assert INVOICE_TRANSITIONS.can(current.status, status)
        assert stored.status is status and current.status is InvoiceStatus.PENDING
        current = stored
    _, _, invoices = await snapshot(flow, study)
    active = [i for i in invoices if i.status is not InvoiceStatus.CANCELLED]
    assert len(active) <= 1
    # every earlier invoice of the study was cancelled before the next one was issued
    assert len(invoices) == 1 + sum(1 for i in invoices if i.status is InvoiceStatus.CANCELLED) - (
        0 if active else 1
    )
    everything = await flow.billing.list_invoices(
        admin, InvoiceFilter(centre_id=flow.world.centre_a), Page(limit=1000)
    )
    sequences = sorted(i.sequence for i in everything if i.year == current.year)
    assert sequences == list(range(1, len(sequences) + 1))
