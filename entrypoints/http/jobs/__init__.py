"""HTTP routes of analysis jobs: start, list, read, cancel, external reports, dead letters."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from entrypoints.http.jobs.controllers import JobController

JOB_CONTROLLERS: list[ControllerRouterHandler] = [JobController]

__all__ = ["JOB_CONTROLLERS"]
