"""HTTP routes of analysis results: a job's result and SEG mask, and the analysis view."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from entrypoints.http.analysis.controllers import AnalysisController, JobResultController

ANALYSIS_CONTROLLERS: list[ControllerRouterHandler] = [JobResultController, AnalysisController]

__all__ = ["ANALYSIS_CONTROLLERS"]
