"""The AI preliminary report: drafted from an analysis result through the ``ReportWriter``.

:meth:`AiReportDrafter.on_result` fits the analysis service's hooks
(``Callable[[AnalysisResult], Awaitable[None]]``), called after a result is stored. The draft
is a ``preliminary`` report with ``is_ai_generated=True``, no author, and the result's id;
drafting is idempotent per result (a second call, or a second worker, gets the first draft).
It does not move the study: a radiologist adopts the draft by editing or verifying it.
"""

from __future__ import annotations

from domain.analysis import AnalysisResult
from domain.errors import Conflict
from domain.identity import SYSTEM_PRINCIPAL
from domain.ports.repositories import ReportFilter
from domain.ports.services import Clock, IdGenerator, ReportWriter
from domain.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from domain.reports import Report, ReportType
from domain.services.auditing import Auditor
from domain.values import Page


async def _drafted_from(uow: UnitOfWork, result: AnalysisResult) -> Report | None:
    found = await uow.reports.list(ReportFilter(analysis_result_id=result.id), Page(limit=1))
    return found[0] if found else None


class AiReportDrafter:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        writer: ReportWriter,
        clock: Clock,
        ids: IdGenerator,
        auditor: Auditor,
    ) -> None:
        self._uow = uow
        self._writer = writer
        self._clock = clock
        self._ids = ids
        self._auditor = auditor

    async def draft_for(self, result: AnalysisResult) -> Report | None:
        """The AI draft of ``result``: the one stored before, or a new one.

        ``None`` when the result's study no longer exists (deleted while it was analysed).
        """
        async with self._uow() as uow:
            existing = await _drafted_from(uow, result)
            if existing is not None:
                return existing
            study = await uow.studies.get(result.study_id)
        if study is None or study.centre_id != result.centre_id:
            return None
        # outside any transaction: a writer backed by a language model may take a while
        text = await self._writer.draft(study, result)
        now = self._clock.now()
        report = Report(
            id=self._ids.new_id(),
            centre_id=study.centre_id,
            study_id=study.id,
            findings=text.findings,
            impression=text.impression,
            type=ReportType.PRELIMINARY,
            is_ai_generated=True,
            author_id=None,
            analysis_result_id=result.id,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._uow() as uow:
                existing = await _drafted_from(uow, result)
                if existing is not None:
                    return existing
                if await uow.studies.get(study.id) is None:
                    return None
                await uow.reports.add(report)
                await uow.commit()
        except Conflict:
            # another worker stored the draft of this result between our read and our write
            async with self._uow() as uow:
                return await _drafted_from(uow, result)
        await self._auditor.record(
            SYSTEM_PRINCIPAL,
            "report.ai_draft",
            "report",
            report.id,
            centre_id=report.centre_id,
            detail=f"from analysis result {result.id} ({result.model_id} {result.model_version})",
        )
        return report

    async def on_result(self, result: AnalysisResult) -> None:
        """The analysis service's hook: draft the preliminary report of a stored result."""
        await self.draft_for(result)
