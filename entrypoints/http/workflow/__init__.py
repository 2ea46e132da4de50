"""HTTP routes of the clinical workflow: assignment, review, reports, AI drafts."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from entrypoints.http.workflow.controllers import ReportController, StudyWorkflowController

WORKFLOW_CONTROLLERS: list[ControllerRouterHandler] = [StudyWorkflowController, ReportController]

__all__ = ["WORKFLOW_CONTROLLERS"]
