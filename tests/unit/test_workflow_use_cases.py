"""The workflow, report, billing and AI-draft use cases on in-memory adapters: who may do what,
what each refusal is, and what the template writer puts in a draft."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from adapters.reports import TemplateReportWriter
from adapters.reports.template_writer import AI_NOTICE
from adapters.system import UuidIdGenerator
from domain.analysis import (
    AnalysisResult,
    Detection,
    InputMetadata,
    PatientBox,
    VoxelBox,
)
from domain.audit import AuditQuery, Outcome
from domain.billing import Currency, InvoiceStatus
from domain.errors import (
    Conflict,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    PriceMissing,
)
from domain.ports.repositories import InvoiceFilter
from domain.reports import ReportStatus, ReportType
from domain.services.ai_reports import AiReportDrafter
from domain.services.billing import (
    BillingService,
    CreateInvoice,
    CreatePrice,
    UpdatePrice,
)
from domain.services.centres import UpdateCentre
from domain.services.reports import CreateReport, EditReport, ReportService
from domain.services.workflow import AssignStudy, WorkflowService
from domain.studies import Modality, Study, StudyStatus, new_study_code
from domain.values import Page
from tests.api.workflow_helpers import a_detection
from tests.unit.factories import T0
from tests.unit.identity_world import World, build_world

_ids = UuidIdGenerator()


def an_analysis_result(study: Study, detections: tuple[Detection, ...] = ()) -> AnalysisResult:
    return AnalysisResult(
        id=_ids.new_id(),
        job_id=_ids.new_id(),
        study_id=study.id,
        centre_id=study.centre_id,
        model_id="demo-lesion-unet",
        model_version="0.1.0",
        detections=detections,
        overall_confidence=0.88,
        image_quality_score=0.35,
        input=InputMetadata(format="dicom", dimensions=(8, 32, 32), voxel_spacing_mm=(2, 1, 1)),
        created_at=study.created_at,
    )


class Flow:
    def __init__(self, world: World) -> None:
        uow, clock, auditor = world.db.unit_of_work, world.clock, world.auditor
        self.world = world
        self.workflow = WorkflowService(uow=uow, clock=clock, auditor=auditor)
        self.reports = ReportService(uow=uow, clock=clock, ids=_ids, auditor=auditor)
        self.billing = BillingService(uow=uow, clock=clock, ids=_ids, auditor=auditor)
        self.writer = CountingWriter()
        self.drafts = AiReportDrafter(
            uow=uow, writer=self.writer, clock=clock, ids=_ids, auditor=auditor
        )

    async def study(self, centre: str = "a", modality: Modality = Modality.CT) -> Study:
        now = self.world.clock.now()
        study = Study(
            id=_ids.new_id(),
            centre_id=self.world.centre_a if centre == "a" else self.world.centre_b,
            code=new_study_code(),
            study_instance_uid=f"2.25.{_ids.new_id().int}",
            modality=modality,
            created_at=now,
            updated_at=now,
        )
        async with self.world.db.unit_of_work() as uow:
            await uow.studies.add(study)
            await uow.commit()
        return study

    async def assigned(self, centre: str = "a", modality: Modality = Modality.CT) -> Study:
        study = await self.study(centre, modality)
        radiologist = self.world.people[f"radiologist-{centre}"].id
        return await self.workflow.assign(
            self.world.as_(f"manager-{centre}"), study.id, AssignStudy(radiologist_id=radiologist)
        )


class CountingWriter(TemplateReportWriter):
    def __init__(self) -> None:
        self.calls = 0

    async def draft(self, study, result):  # type: ignore[no-untyped-def]
        self.calls += 1
        await asyncio.sleep(0)  # let a concurrent caller interleave, as a slow writer would
        return await super().draft(study, result)


@pytest.fixture
async def flow() -> Flow:
    return Flow(await build_world())


async def test_only_centre_staff_who_upload_may_assign_and_only_to_their_radiologists(flow: Flow):
    study = await flow.study()
    people, assign = flow.world.people, flow.workflow.assign
    to_a = AssignStudy(radiologist_id=people["radiologist-a"].id)

    with pytest.raises(PermissionDenied):
        await assign(flow.world.as_("radiologist-a"), study.id, to_a)
    with pytest.raises(NotFound):
        await assign(flow.world.as_("technician-b"), study.id, to_a)
    for wrong in ("radiologist-b", "technician-a", "manager-a"):
        with pytest.raises(InvalidInput):
            await assign(
                flow.world.as_("technician-a"),
                study.id,
                AssignStudy(radiologist_id=people[wrong].id),
            )
    assigned = await assign(flow.world.as_("technician-a"), study.id, to_a)

    assert (assigned.status, assigned.assigned_radiologist_id) == (
        StudyStatus.ASSIGNED,
        people["radiologist-a"].id,
    )
    assert assigned.version == study.version + 1


async def test_only_the_assigned_radiologist_opens_the_review_and_writes_the_report(flow: Flow):
    study = await flow.assigned()
    write = CreateReport(study_id=study.id, findings="Clear.", impression="Normal.")

    for who in ("manager-a", "root", "technician-a"):
        with pytest.raises(PermissionDenied):
            await flow.reports.create(flow.world.as_(who), write)
    with pytest.raises(NotFound):
        await flow.reports.create(flow.world.as_("radiologist-b"), write)
    report = await flow.reports.create(flow.world.as_("radiologist-a"), write)
    with pytest.raises(Conflict):
        await flow.reports.create(flow.world.as_("radiologist-a"), write)

    async with flow.world.db.unit_of_work() as uow:
        stored = await uow.studies.get(study.id)
    assert stored is not None and stored.status is StudyStatus.REPORT_GENERATED
    assert (report.author_id, report.type) == (flow.world.people["radiologist-a"].id, "preliminary")


async def test_a_report_cannot_be_written_before_the_study_is_assigned(flow: Flow):
    study = await flow.study()
    with pytest.raises(PermissionDenied):
        await flow.reports.create(
            flow.world.as_("radiologist-a"),
            CreateReport(study_id=study.id, findings="x", impression="y"),
        )
    with pytest.raises(InvalidTransition):
        await flow.workflow.open_review(flow.world.admin, study.id)


async def test_only_the_author_or_an_admin_edits_a_draft(flow: Flow):
    study = await flow.assigned()
    radiologist = flow.world.as_("radiologist-a")
    report = await flow.reports.create(
        radiologist, CreateReport(study_id=study.id, findings="a", impression="b")
    )

    with pytest.raises(PermissionDenied):
        await flow.reports.edit(flow.world.as_("manager-a"), report.id, EditReport(findings="c"))
    with pytest.raises(InvalidInput):
        await flow.reports.edit(radiologist, report.id, EditReport(findings="   "))
    by_admin = await flow.reports.edit(flow.world.admin, report.id, EditReport(impression="d"))

    assert (by_admin.findings, by_admin.impression, by_admin.version) == ("a", "d", 2)
    assert by_admin.author_id == radiologist.id


async def test_verification_closes_the_report_and_the_study_and_addenda_follow(flow: Flow):
    study = await flow.assigned()
    radiologist = flow.world.as_("radiologist-a")
    report = await flow.reports.create(
        radiologist, CreateReport(study_id=study.id, findings="a", impression="b")
    )
    with pytest.raises(PermissionDenied):
        await flow.reports.verify(flow.world.admin, report.id)

    done = await flow.reports.verify(radiologist, report.id)

    assert (done.report.status, done.report.type) == (ReportStatus.VERIFIED, ReportType.FINAL)
    assert done.report.verified_by == radiologist.id and done.invoice_id is None
    with pytest.raises(Conflict):
        await flow.reports.edit(radiologist, report.id, EditReport(findings="changed"))
    with pytest.raises(InvalidTransition):
        await flow.reports.verify(radiologist, report.id)
    with pytest.raises(InvalidTransition):
        await flow.workflow.assign(
            flow.world.admin,
            study.id,
            AssignStudy(radiologist_id=flow.world.people["radiologist-a"].id),
        )
    addendum = await flow.reports.create(
        radiologist,
        CreateReport(
            study_id=study.id, findings="Also", impression="c", amends_report_id=report.id
        ),
    )
    verified_addendum = await flow.reports.verify(radiologist, addendum.id)
    assert verified_addendum.report.type is ReportType.ADDENDUM
    assert verified_addendum.report.amends_report_id == report.id
    versions = await flow.reports.versions(radiologist, report.id)
    assert [v.status for v in versions] == [ReportStatus.DRAFT, ReportStatus.VERIFIED]


async def test_an_ai_draft_is_written_once_per_result_and_moves_nothing(flow: Flow):
    study = await flow.study()
    result = an_analysis_result(study)

    first, second = await asyncio.gather(
        flow.drafts.draft_for(result), flow.drafts.draft_for(result)
    )
    again = await flow.drafts.draft_for(result)

    assert first is not None and first == second == again
    assert (first.is_ai_generated, first.author_id, first.type) == (True, None, "preliminary")
    assert first.analysis_result_id == result.id
    assert AI_NOTICE in first.findings
    assert "No lesion detected by the model." in first.findings
    assert "limited (score 0.35)" in first.findings
    assert first.impression.startswith(
        "No suspicious lesion detected (overall model confidence 88%)"
    )
    async with flow.world.db.unit_of_work() as uow:
        stored = await uow.studies.get(study.id)
    assert stored == study
    shown = await flow.reports.ai_report(flow.world.as_("technician-a"), study.id)
    assert shown == first
    with pytest.raises(NotFound):
        await flow.reports.ai_report(flow.world.as_("technician-b"), study.id)
    trail = await flow.world.audit.query(AuditQuery(resource_id=str(first.id)), Page())
    assert [e.action for e in trail if e.actor_kind == "system"] == ["report.ai_draft"]


async def test_an_ai_draft_of_a_deleted_study_is_not_written(flow: Flow):
    study = await flow.study()
    async with flow.world.db.unit_of_work() as uow:
        await uow.studies.delete(study.id)
        await uow.commit()

    assert await flow.drafts.draft_for(an_analysis_result(study)) is None


async def test_the_template_lists_each_lesion_with_location_size_volume_and_confidence():
    study = Study(
        id=_ids.new_id(),
        centre_id=_ids.new_id(),
        code=new_study_code(),
        study_instance_uid="2.25.1",
        modality=Modality.MR,
        created_at=T0,
        updated_at=T0,
    )
    small = Detection(
        label="lesion",
        confidence=0.61,
        voxel_box=VoxelBox(start=(4, 1, 1), stop=(5, 3, 3)),
        patient_box=PatientBox(minimum_mm=(0.0, 0.0, 0.0), maximum_mm=(2.0, 4.0, 2.5)),
    )
    large = a_detection(confidence=0.97)
    result = an_analysis_result(study, (small, large))

    text = await TemplateReportWriter().draft(study, result)

    lines = text.findings.splitlines()
    assert lines[0] == AI_NOTICE
    first = next(line for line in lines if line.startswith("1. "))
    second = next(line for line in lines if line.startswith("2. "))
    assert "confidence 97%" in first and "2144.7 mm3 (2.14 mL)" in first
    assert "maximum 3D diameter 18.4 mm" in first and "slices 4-9" in first
    assert "17.0 x 16.5 x 16.0 mm" in first
    assert "confidence 61%" in second and "volume not measured" in second
    assert "(1.0, 2.0, 1.2) mm" in second and "slice 5" in second
    assert "Modality: mr" in text.findings
    assert text.impression.startswith("2 suspicious lesions detected")
    assert "largest measures 2144.7 mm3" in text.impression
    assert "requires verification by a radiologist" in text.impression


async def test_prices_are_admin_written_exact_decimals_read_by_their_centre(flow: Flow):
    world = flow.world
    create = CreatePrice(
        centre_id=world.centre_a,
        modality=Modality.MR,
        amount=Decimal("1200.5"),
        currency=Currency.INR,
    )
    with pytest.raises(PermissionDenied):
        await flow.billing.create_price(world.as_("manager-a"), create)
    with pytest.raises(InvalidInput):
        await flow.billing.create_price(
            world.admin,
            CreatePrice(
                centre_id=world.centre_a,
                modality=Modality.US,
                amount=Decimal("1.005"),
                currency=Currency.USD,
            ),
        )
    price = await flow.billing.create_price(world.admin, create)
    with pytest.raises(Conflict):
        await flow.billing.create_price(world.admin, create)

    assert price.price.amount == Decimal("1200.5")
    assert await flow.billing.list_prices(world.as_("technician-a"), None, Page()) == [price]
    assert await flow.billing.list_prices(world.as_("technician-b"), world.centre_a, Page()) == []
    with pytest.raises(NotFound):
        await flow.billing.get_price(world.as_("manager-b"), price.id)
    changed = await flow.billing.update_price(
        world.admin, price.id, UpdatePrice(amount=Decimal("1300.00"))
    )
    assert (changed.price.amount, changed.price.currency, changed.version) == (
        Decimal("1300.00"),
        Currency.INR,
        2,
    )


async def test_a_modality_without_a_price_is_a_409_and_verification_still_goes_through(flow: Flow):
    world = flow.world
    await world.centres.update(world.admin, world.centre_a, UpdateCentre(auto_invoice=True))
    study = await flow.assigned(modality=Modality.PET)
    radiologist = world.as_("radiologist-a")
    report = await flow.reports.create(
        radiologist, CreateReport(study_id=study.id, findings="a", impression="b")
    )

    done = await flow.reports.verify(radiologist, report.id)

    assert done.report.status is ReportStatus.VERIFIED and done.invoice_id is None
    with pytest.raises(PriceMissing) as refused:
        await flow.billing.create_invoice(world.admin, CreateInvoice(study_id=study.id))
    assert "pet" in refused.value.detail
    trail = await world.audit.query(AuditQuery(resource_id=str(study.id)), Page())
    failed = [e for e in trail if e.action == "invoice.create"]
    assert [e.outcome for e in failed] == [Outcome.FAILURE]
    assert await flow.billing.list_invoices(world.admin, InvoiceFilter(), Page()) == []


async def test_one_invoice_per_study_unless_cancelled_and_only_admins_change_it(flow: Flow):
    world = flow.world
    await flow.billing.create_price(
        world.admin,
        CreatePrice(
            centre_id=world.centre_b,
            modality=Modality.CT,
            amount=Decimal("80"),
            currency=Currency.USD,
        ),
    )
    study = await flow.study("b")
    first = await flow.billing.create_invoice(world.admin, CreateInvoice(study_id=study.id))
    with pytest.raises(Conflict):
        await flow.billing.create_invoice(world.admin, CreateInvoice(study_id=study.id))
    with pytest.raises(PermissionDenied):
        await flow.billing.create_invoice(world.as_("manager-b"), CreateInvoice(study_id=study.id))
    with pytest.raises(PermissionDenied):
        await flow.billing.set_invoice_status(world.as_("manager-b"), first.id, InvoiceStatus.PAID)
    with pytest.raises(NotFound):
        await flow.billing.get_invoice(world.as_("manager-a"), first.id)
    with pytest.raises(PermissionDenied):
        await flow.billing.get_invoice(world.as_("radiologist-b"), first.id)

    cancelled = await flow.billing.set_invoice_status(
        world.admin, first.id, InvoiceStatus.CANCELLED
    )
    second = await flow.billing.create_invoice(world.admin, CreateInvoice(study_id=study.id))

    assert cancelled.cancelled_at is not None
    assert (first.sequence, second.sequence) == (1, 2)
    assert second.number.endswith("-000002") and second.number[:6] == first.number[:6]
    assert await flow.billing.get_invoice(world.as_("manager-b"), second.id) == second
    with pytest.raises(InvalidTransition):
        await flow.billing.set_invoice_status(world.admin, first.id, InvoiceStatus.PAID)
