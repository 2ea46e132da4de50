"""Use cases for radiology reports: writing, editing, verifying, reading, versions, addenda.

* A radiologist writes the report of a study assigned to them; that moves the study to
  ``report_generated`` (through ``in_review`` when it was only assigned).
* The author (or an admin) edits a draft. An AI draft has no author: the study's radiologist
  adopts it by editing (or verifying) it, which counts as writing the report.
* The study's radiologist verifies: the report and the study become immutable. Later
  changes are addenda (``amends_report_id``), which any radiologist of the centre writes and
  verifies without moving the study. Verifying issues the invoice when the centre's
  ``auto_invoice`` is on, in the same transaction (a missing price skips the invoice and is
  audited as a failure, it does not block the clinical record).
* Every stored version stays readable. Another centre's report or study is not found.
"""

from __future__ import annotations

import msgspec

from domain.audit import Outcome
from domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied, PriceMissing
from domain.events import ReportVerified
from domain.identity import Principal, PrincipalKind, Scope
from domain.ports.repositories import ReportFilter
from domain.ports.services import Clock, IdGenerator
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from domain.reports import Report, ReportStatus, ReportType
from domain.services.access import require_scope, scoped_centre, visible
from domain.services.auditing import Auditor
from domain.services.billing import issue_invoice
from domain.services.workflow import require_assigned, require_radiologist, visible_study
from domain.studies import Study, StudyStatus
from domain.values import Id, Page

MAX_TEXT_LENGTH = 20_000


class CreateReport(msgspec.Struct, frozen=True, kw_only=True):
    study_id: Id
    findings: str
    impression: str
    amends_report_id: Id | None = None
    """Set to write an addendum to this verified report."""


class EditReport(msgspec.Struct, frozen=True, kw_only=True):
    findings: str | msgspec.UnsetType = msgspec.UNSET
    impression: str | msgspec.UnsetType = msgspec.UNSET


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """A verified report and, when the centre invoices automatically, its invoice's id."""

    report: Report
    invoice_id: Id | None = None


def _require_report_reader(principal: Principal) -> None:
    if principal.kind is PrincipalKind.API_KEY:
        require_scope(principal, Scope.REPORTS_READ)


def _check_text(findings: str, impression: str) -> None:
    for name, text in (("findings", findings), ("impression", impression)):
        if not text.strip():
            raise InvalidInput(f"{name} must not be empty")
        if len(text) > MAX_TEXT_LENGTH:
            raise InvalidInput(f"{name} is longer than {MAX_TEXT_LENGTH} characters")


class ReportService:
    def __init__(
        self, *, uow: UnitOfWorkFactory, clock: Clock, ids: IdGenerator, auditor: Auditor
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._auditor = auditor

    async def _visible(self, uow: UnitOfWork, principal: Principal, report_id: Id) -> Report:
        report = visible(principal, await uow.reports.get(report_id), "report", report_id)
        return report

    async def _report_written(self, uow: UnitOfWork, study: Study) -> Study:
        """Move the study to ``report_generated``, opening the review on the way if needed."""
        if study.status is StudyStatus.REPORT_GENERATED:
            raise Conflict("the study already has a radiologist's draft report; edit that one")
        if study.status is StudyStatus.VERIFIED:
            raise Conflict("the study is verified; write an addendum (amends_report_id)")
        now = self._clock.now()
        if study.status is StudyStatus.ASSIGNED:
            study = study.move_to(StudyStatus.IN_REVIEW, at=now)
        return await uow.studies.update(study.move_to(StudyStatus.REPORT_GENERATED, at=now))

    # -- writing -------------------------------------------------------------------------

    async def create(self, principal: Principal, command: CreateReport) -> Report:
        _check_text(command.findings, command.impression)
        async with self._uow() as uow:
            study = await visible_study(uow, principal, command.study_id)
            now = self._clock.now()
            if command.amends_report_id is not None:
                require_radiologist(principal, action="write addenda")
                amended = await uow.reports.get(command.amends_report_id)
                if amended is None or amended.study_id != study.id:
                    raise NotFound("report of this study", command.amends_report_id)
                if amended.status is not ReportStatus.VERIFIED:
                    raise Conflict("only a verified report takes addenda; edit the draft instead")
                kind = ReportType.ADDENDUM
            else:
                require_radiologist(principal, action="write reports")
                require_assigned(principal, study, action="write its report")
                await self._report_written(uow, study)
                kind = ReportType.PRELIMINARY
            report = Report(
                id=self._ids.new_id(),
                centre_id=study.centre_id,
                study_id=study.id,
                findings=command.findings,
                impression=command.impression,
                type=kind,
                author_id=principal.id,
                amends_report_id=command.amends_report_id,
                created_at=now,
                updated_at=now,
            )
            await uow.reports.add(report)
            await uow.commit()
        await self._auditor.record(
            principal,
            "report.create",
            "report",
            report.id,
            centre_id=report.centre_id,
            detail=f"{report.type.value} for study {report.study_id}",
        )
        return report

    async def _adopt(
        self, uow: UnitOfWork, principal: Principal, report: Report, study: Study
    ) -> tuple[Report, Study]:
        """An AI draft becomes the radiologist's report when they first edit or verify it."""
        require_radiologist(principal, action="take over the AI draft")
        require_assigned(principal, study, action="take over the AI draft")
        study = await self._report_written(uow, study)
        return msgspec.structs.replace(report, author_id=principal.id), study

    async def edit(self, principal: Principal, report_id: Id, command: EditReport) -> Report:
        async with self._uow() as uow:
            report = await self._visible(uow, principal, report_id)
            if report.status is ReportStatus.VERIFIED:
                raise Conflict("a verified report cannot be edited; write an addendum instead")
            study = await visible_study(uow, principal, report.study_id)
            if report.type is not ReportType.ADDENDUM and study.status is StudyStatus.VERIFIED:
                raise Conflict("the study is verified; its drafts are closed, write an addendum")
            if report.author_id is None and not principal.is_admin:
                report, study = await self._adopt(uow, principal, report, study)
            elif report.author_id != principal.id and not principal.is_admin:
                raise PermissionDenied("only the author or an admin may edit a draft report")
            edited = report.edit(
                findings=None if command.findings is msgspec.UNSET else command.findings,
                impression=None if command.impression is msgspec.UNSET else command.impression,
                at=self._clock.now(),
            )
            _check_text(edited.findings, edited.impression)
            stored = await uow.reports.update(edited)
            await uow.commit()
        await self._auditor.record(
            principal, "report.update", "report", report_id, centre_id=report.centre_id
        )
        return stored

    async def verify(self, principal: Principal, report_id: Id) -> Verification:
        invoice_id: Id | None = None
        invoice_problem: str | None = None
        async with self._uow() as uow:
            report = await self._visible(uow, principal, report_id)
            require_radiologist(principal, action="verify reports")
            study = await visible_study(uow, principal, report.study_id)
            if report.type is ReportType.ADDENDUM:
                if study.status is not StudyStatus.VERIFIED:
                    raise Conflict("an addendum is verified after its study")
            else:
                require_assigned(principal, study, action="verify its report")
                if report.author_id is None and report.status is ReportStatus.DRAFT:
                    report, study = await self._adopt(uow, principal, report, study)
            now = self._clock.now()
            verifier = principal.id
            if verifier is None:  # a radiologist is a signed-in user with an id
                raise PermissionDenied("only a signed-in radiologist may verify reports")
            verified = await uow.reports.update(report.verify(verifier, at=now))
            if report.type is not ReportType.ADDENDUM:
                study = await uow.studies.update(study.move_to(StudyStatus.VERIFIED, at=now))
                centre = await uow.centres.get(study.centre_id)
                if centre is not None and centre.auto_invoice:
                    invoice_id, invoice_problem = await self._auto_invoice(uow, study)
            uow.collect(
                ReportVerified(
                    at=now, centre_id=report.centre_id, report_id=report.id, study_id=study.id
                )
            )
            await uow.commit()
        await self._auditor.record(
            principal, "report.verify", "report", report_id, centre_id=report.centre_id
        )
        if invoice_id is not None:
            await self._auditor.record(
                principal,
                "invoice.create",
                "invoice",
                invoice_id,
                centre_id=report.centre_id,
                detail=f"automatic, on verification of report {report_id}",
            )
        elif invoice_problem is not None:
            await self._auditor.record(
                principal,
                "invoice.create",
                "study",
                report.study_id,
                outcome=Outcome.FAILURE,
                centre_id=report.centre_id,
                detail=f"automatic invoice not issued: {invoice_problem}",
            )
        return Verification(report=verified, invoice_id=invoice_id)

    async def _auto_invoice(self, uow: UnitOfWork, study: Study) -> tuple[Id | None, str | None]:
        """(invoice id, None), or (None, why not). One invoice per study: an admin may have
        issued it already. A missing price is found before anything is written, so the
        verification's transaction stays usable."""
        if await uow.invoices.active_for_study(study.id) is not None:
            return None, None
        try:
            invoice = await issue_invoice(uow, study, at=self._clock.now(), ids=self._ids)
        except PriceMissing as err:
            return None, err.detail
        return invoice.id, None

    # -- reading -------------------------------------------------------------------------

    async def get(self, principal: Principal, report_id: Id) -> Report:
        async with self._uow() as uow:
            report = await self._visible(uow, principal, report_id)
        _require_report_reader(principal)
        await self._auditor.record(
            principal, "report.read", "report", report.id, centre_id=report.centre_id
        )
        return report

    async def versions(self, principal: Principal, report_id: Id) -> list[Report]:
        """Every stored version of a report, oldest first."""
        async with self._uow() as uow:
            report = await self._visible(uow, principal, report_id)
            _require_report_reader(principal)
            found = await uow.reports.versions(report_id)
        await self._auditor.record(
            principal,
            "report.read",
            "report",
            report.id,
            centre_id=report.centre_id,
            detail=f"{len(found)} version(s)",
        )
        return found

    async def ai_report(self, principal: Principal, study_id: Id) -> Report:
        """The newest AI-drafted report of a study; not found until an analysis drafted one."""
        async with self._uow() as uow:
            study = await visible_study(uow, principal, study_id)
            _require_report_reader(principal)
            found = await uow.reports.list(
                ReportFilter(study_id=study.id, is_ai_generated=True), Page(limit=1)
            )
        if not found:
            raise NotFound("AI report of study", study_id)
        await self._auditor.record(
            principal, "report.read", "report", found[0].id, centre_id=study.centre_id
        )
        return found[0]

    # after the methods that annotate with the builtin ``list``, which this name shadows
    async def list(self, principal: Principal, where: ReportFilter, page: Page) -> list[Report]:
        """Reports of the principal's centre (an admin's choice of centre, or all)."""
        _require_report_reader(principal)
        scoped = msgspec.structs.replace(where, centre_id=scoped_centre(principal, where.centre_id))
        async with self._uow() as uow:
            found = await uow.reports.list(scoped, page)
        await self._auditor.record(
            principal, "report.list", "report", None, detail=f"{len(found)} report(s)"
        )
        return found
