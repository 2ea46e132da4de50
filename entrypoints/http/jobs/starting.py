"""Starting the analysis of an upload (``POST /upload``, ``POST /studies/from-storage``).

With a ``model_id`` the upload is checked first (the model exists, the caller may start
analyses) so that a refused request stores nothing. Without one, the installation's only model
is used when exactly one is installed and the caller may start analyses; otherwise the file is
stored and no job is started (``job_id`` is ``null``).
"""

from __future__ import annotations

from uuid import UUID

from domain.errors import InvalidInput, PermissionDenied
from domain.identity import Principal
from domain.services.jobs import SubmitJob, require_job_writer
from domain.services.uploads import IngestResult
from entrypoints.bootstrap import Container


def analysis_model(container: Container, principal: Principal, model_id: str | None) -> str | None:
    """The model the upload will be analysed with, checked before anything is stored."""
    if model_id is not None:
        require_job_writer(principal, "start analyses")
        if container.models.get(model_id) is None:
            raise InvalidInput(f"model '{model_id[:200]}' is not installed")
        return model_id
    installed = container.models.list()
    if len(installed) != 1:
        return None
    try:
        require_job_writer(principal, "start analyses")
    except PermissionDenied:
        return None
    return installed[0].id


async def start_analysis(
    container: Container, principal: Principal, result: IngestResult, model_id: str | None
) -> UUID | None:
    """Queue the analysis of the one uploaded file's series; its job id, or ``None``."""
    if model_id is None or not result.files:
        return None
    stored = result.files[0]
    command = SubmitJob(model_id=model_id, study_id=stored.study_id, series_id=stored.series_id)
    job = await container.services.jobs.submit(principal, command)
    return job.id
