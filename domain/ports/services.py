"""Small ports for time, identifiers, auditing and report text."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from domain.analysis import AnalysisResult
from domain.audit import AuditEvent, AuditQuery
from domain.studies import Study
from domain.values import Id, Page


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class IdGenerator(Protocol):
    def new_id(self) -> Id: ...


class AuditLog(Protocol):
    async def record(self, event: AuditEvent) -> None: ...

    async def query(self, where: AuditQuery, page: Page) -> list[AuditEvent]:
        """Newest first."""


class ReportText(Protocol):
    findings: str
    impression: str


class ReportWriter(Protocol):
    """Turns an analysis result into report text (a template by default; room for an LLM)."""

    async def draft(self, study: Study, result: AnalysisResult) -> ReportText: ...
