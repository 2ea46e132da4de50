"""Radiology reports: drafts, verification, and addenda after verification."""

from __future__ import annotations

import enum
from datetime import datetime

import msgspec

from domain.errors import Conflict
from domain.state_machine import TransitionTable
from domain.values import Id


class ReportType(enum.StrEnum):
    PRELIMINARY = "preliminary"
    FINAL = "final"
    ADDENDUM = "addendum"


class ReportStatus(enum.StrEnum):
    DRAFT = "draft"
    VERIFIED = "verified"


AI_DRAFT_NOTICE = (
    "AI-GENERATED PRELIMINARY REPORT - NOT VERIFIED BY A RADIOLOGIST. "
    "It must be reviewed, corrected and verified before any clinical use."
)
"""The first line of every AI draft; report writers put it there, verification replaces it."""

AI_VERIFIED_NOTICE = (
    "AI-ASSISTED REPORT - drafted by an AI model, reviewed and verified by a radiologist."
)
"""What an AI draft's notice becomes once a radiologist verifies it: a verified report must not
say it is unverified, and must still say that a model wrote its first draft."""

REPORT_TRANSITIONS: TransitionTable[ReportStatus] = TransitionTable(
    "report", {ReportStatus.DRAFT: {ReportStatus.VERIFIED}, ReportStatus.VERIFIED: set()}
)


class Report(msgspec.Struct, frozen=True, kw_only=True):
    id: Id
    centre_id: Id
    study_id: Id
    findings: str
    impression: str
    type: ReportType = ReportType.PRELIMINARY
    status: ReportStatus = ReportStatus.DRAFT
    is_ai_generated: bool = False
    author_id: Id | None = None
    amends_report_id: Id | None = None
    """For an addendum: the verified report it amends."""
    analysis_result_id: Id | None = None
    """For an AI draft: the analysis result it was drafted from (one draft per result)."""
    verified_by: Id | None = None
    verified_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def edit(self, *, findings: str | None, impression: str | None, at: datetime) -> Report:
        """Change a draft. A verified report is immutable: corrections are addenda."""
        if self.status is ReportStatus.VERIFIED:
            raise Conflict("a verified report cannot be edited; create an addendum instead")
        return msgspec.structs.replace(
            self,
            findings=self.findings if findings is None else findings,
            impression=self.impression if impression is None else impression,
            updated_at=at,
        )

    def verify(self, verifier_id: Id, *, at: datetime) -> Report:
        REPORT_TRANSITIONS.check(self.status, ReportStatus.VERIFIED)
        findings = self.findings
        if self.is_ai_generated:
            findings = findings.replace(AI_DRAFT_NOTICE, AI_VERIFIED_NOTICE)
        return msgspec.structs.replace(
            self,
            findings=findings,
            status=ReportStatus.VERIFIED,
            type=ReportType.ADDENDUM if self.type is ReportType.ADDENDUM else ReportType.FINAL,
            verified_by=verifier_id,
            verified_at=at,
            updated_at=at,
        )
