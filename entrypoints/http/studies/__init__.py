"""HTTP routes of the imaging archive: uploads, studies, instances, rendering, notes."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

from entrypoints.http.studies.controllers import StudyController, UploadController
from entrypoints.http.studies.instances import InstanceController
from entrypoints.http.studies.staging import StagingController

STUDY_CONTROLLERS: list[ControllerRouterHandler] = [
    StudyController,
    UploadController,
    InstanceController,
    StagingController,
]

__all__ = ["STUDY_CONTROLLERS"]
