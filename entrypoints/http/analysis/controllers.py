"""``/jobs/{id}/result``, ``/jobs/{id}/mask`` and ``/analysis/{id}``: reading what an analysis
found. The jobs controller owns ``/jobs`` itself; these routes are their own controllers so
that the paths never collide."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from domain.identity import Principal
from entrypoints.bootstrap import Container
from entrypoints.http.analysis.schemas import AnalysisRead, ResultRead, analysis_read, result_read
from entrypoints.http.dependencies import provide_container
from entrypoints.http.security import provide_principal

API_PATH = "/api/v1"
DICOM = "application/dicom"
DEPENDENCIES = {
    "container": Provide(provide_container, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
}


class JobResultController(Controller):
    path = "/jobs/{job_id:uuid}"
    tags = ["analysis"]
    dependencies = DEPENDENCIES

    @get("/result", operation_id="getJobResult", summary="What a completed analysis job found")
    async def result(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        job_id: FromPath[UUID],
    ) -> ResultRead:
        found = await container.services.analyses.result_for_job(principal, job_id)
        return result_read(found, API_PATH)

    @get(
        "/mask",
        operation_id="getJobMask",
        summary="The detections as a DICOM SEG referencing the source series",
        media_type=DICOM,
    )
    async def mask(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        job_id: FromPath[UUID],
    ) -> Response[bytes]:
        data = await container.services.analyses.mask_for_job(principal, job_id)
        return Response(
            data,
            media_type=DICOM,
            headers={"Content-Disposition": f'attachment; filename="segmentation-{job_id}.dcm"'},
        )


class AnalysisController(Controller):
    path = "/analysis"
    tags = ["analysis"]
    dependencies = DEPENDENCIES

    @get(
        "/{analysis_id:uuid}",
        operation_id="getAnalysis",
        summary="An analysis result: lesions, quality assessment, recommendations",
    )
    async def analysis(
        self,
        container: NamedDependency[Container],
        principal: NamedDependency[Principal],
        analysis_id: FromPath[UUID],
    ) -> AnalysisRead:
        found = await container.services.analyses.analysis(principal, analysis_id)
        return analysis_read(found, API_PATH)
