"""Controllers for assigning studies, opening them for review, reports and AI drafts."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from domain.identity import Principal
from domain.ports.repositories import ReportFilter
from domain.reports import ReportStatus
from domain.services.reports import CreateReport, EditReport
from domain.services.workflow import AssignStudy
from domain.values import MAX_PAGE_SIZE, Page
from entrypoints.bootstrap import Container
from entrypoints.http.identity.schemas import read_as
from entrypoints.http.studies.controllers import DEPENDENCIES
from entrypoints.http.studies.schemas import StudyRead
from entrypoints.http.workflow.schemas import (
    AssignRequest,
    ReportCreate,
    ReportRead,
    ReportUpdate,
    VerifiedReportRead,
)

Skip = Annotated[int, QueryParameter(ge=0, description="Items to pass over")]
Limit = Annotated[
    int, QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="At most this many items")
]


class StudyWorkflowController(Controller):
    path = "/studies"
    tags = ["workflow"]
    dependencies = DEPENDENCIES

    @patch(
        "/{study_id:uuid}/assign",
        operation_id="assignStudy",
        summary="Assign a study to a radiologist of its centre (technician, manager, admin)",
    )
    async def assign(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        study_id: FromPath[UUID],
        data: JSONBody[AssignRequest],
    ) -> StudyRead:
        study = await container.services.workflow.assign(
            principal, study_id, AssignStudy(radiologist_id=data.radiologist_id)
        )
        return read_as(study, StudyRead)

    @post(
        "/{study_id:uuid}/review",
        operation_id="openStudyReview",
        summary="The assigned radiologist opens the study for review (assigned -> in_review)",
        status_code=200,
    )
    async def open_review(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        study_id: FromPath[UUID],
    ) -> StudyRead:
        study = await container.services.workflow.open_review(principal, study_id)
        return read_as(study, StudyRead)

    @get(
        "/{study_id:uuid}/ai-report",
        operation_id="getStudyAiReport",
        summary="The AI preliminary report drafted from the study's analysis (404 until then)",
    )
    async def ai_report(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        study_id: FromPath[UUID],
    ) -> ReportRead:
        report = await container.services.reports.ai_report(principal, study_id)
        return read_as(report, ReportRead)


class ReportController(Controller):
    path = "/reports"
    tags = ["reports"]
    dependencies = DEPENDENCIES

    @post("/", operation_id="createReport", summary="Write a report or an addendum (radiologist)")
    async def create(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        data: JSONBody[ReportCreate],
    ) -> ReportRead:
        command = msgspec.convert(msgspec.to_builtins(data), CreateReport)
        return read_as(await container.services.reports.create(principal, command), ReportRead)

    @get("/", operation_id="listReports", summary="Reports of the caller's centre, newest first")
    async def list_reports(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        study_id: FromQuery[UUID | None] = None,
        status: FromQuery[ReportStatus | None] = None,
        author_id: FromQuery[UUID | None] = None,
        is_ai_generated: FromQuery[bool | None] = None,
        centre_id: FromQuery[UUID | None] = None,
        skip: Skip = 0,
        limit: Limit = 100,
    ) -> list[ReportRead]:
        where = ReportFilter(
            centre_id=centre_id,
            study_id=study_id,
            author_id=author_id,
            status=status,
            is_ai_generated=is_ai_generated,
        )
        found = await container.services.reports.list(
            principal, where, Page(skip=skip, limit=limit)
        )
        return [read_as(r, ReportRead) for r in found]

    @get("/{report_id:uuid}", operation_id="getReport", summary="One report")
    async def get_report(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        report_id: FromPath[UUID],
    ) -> ReportRead:
        return read_as(await container.services.reports.get(principal, report_id), ReportRead)

    @patch(
        "/{report_id:uuid}",
        operation_id="updateReport",
        summary="Edit a draft (its author or an admin; the study's radiologist adopts an AI draft)",
    )
    async def update(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        report_id: FromPath[UUID],
        data: JSONBody[ReportUpdate],
    ) -> ReportRead:
        command = msgspec.convert(msgspec.to_builtins(data), EditReport)
        report = await container.services.reports.edit(principal, report_id, command)
        return read_as(report, ReportRead)

    @patch(
        "/{report_id:uuid}/verify",
        operation_id="verifyReport",
        summary="Verify a report (the study's radiologist): report and study become immutable",
    )
    async def verify(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        report_id: FromPath[UUID],
    ) -> VerifiedReportRead:
        done = await container.services.reports.verify(principal, report_id)
        values = msgspec.structs.asdict(done.report) | {"invoice_id": done.invoice_id}
        return msgspec.convert(values, VerifiedReportRead)

    @get(
        "/{report_id:uuid}/versions",
        operation_id="listReportVersions",
        summary="Every stored version of a report, oldest first",
    )
    async def versions(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        report_id: FromPath[UUID],
    ) -> list[ReportRead]:
        found = await container.services.reports.versions(principal, report_id)
        return [read_as(r, ReportRead) for r in found]
