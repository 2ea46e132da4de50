"""API schemas of assignment, reports and AI drafts: separate from the domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from domain.reports import ReportStatus, ReportType

ReportText = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]


class AssignRequest(msgspec.Struct, frozen=True, kw_only=True):
    radiologist_id: UUID
    """An active radiologist of the study's centre."""


class ReportCreate(msgspec.Struct, frozen=True, kw_only=True):
    study_id: UUID
    findings: ReportText
    impression: ReportText
    amends_report_id: UUID | None = None
    """Write an addendum to this verified report of the study."""


class ReportUpdate(msgspec.Struct, frozen=True, kw_only=True):
    findings: ReportText | msgspec.UnsetType = msgspec.UNSET
    impression: ReportText | msgspec.UnsetType = msgspec.UNSET


class ReportRead(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    centre_id: UUID
    study_id: UUID
    findings: str
    impression: str
    type: ReportType
    status: ReportStatus
    is_ai_generated: bool
    author_id: UUID | None
    amends_report_id: UUID | None
    analysis_result_id: UUID | None
    verified_by: UUID | None
    verified_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class VerifiedReportRead(ReportRead, frozen=True, kw_only=True):
    invoice_id: UUID | None = None
    """The invoice issued on verification, when the centre invoices automatically."""
