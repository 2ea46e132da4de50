"""``/health`` (liveness), ``/health/detailed`` (every dependency) and ``/metrics``."""

from __future__ import annotations

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency, Provide
from litestar.openapi import ResponseSpec

from entrypoints.bootstrap import Container
from entrypoints.health import HealthReport, check_health
from entrypoints.http.dependencies import provide_container, provide_metrics
from entrypoints.http.observability import HttpMetrics


class Liveness(msgspec.Struct, frozen=True, kw_only=True):
    status: str


class HealthController(Controller):
    path = "/health"
    tags = ["health"]
    dependencies = {"container": Provide(provide_container, sync_to_thread=False)}

    @get(
        "/",
        operation_id="getLiveness",
        summary="The process is up (touches no dependency)",
    )
    async def liveness(self) -> Liveness:
        return Liveness(status="ok")

    @get(
        "/detailed",
        operation_id="getDetailedHealth",
        summary="Every dependency with its status and response time",
        description="200 while every component is ok or degraded, 503 when any has an error.",
        responses={
            503: ResponseSpec(data_container=HealthReport, description="A component has an error")
        },
    )
    async def detailed(self, container: NamedDependency[Container]) -> Response[HealthReport]:
        report = await check_health(container.health_probes)
        return Response(report, status_code=200 if report.healthy else 503)


class MetricsController(Controller):
    path = "/metrics"
    tags = ["health"]
    dependencies = {"metrics": Provide(provide_metrics, sync_to_thread=False)}

    @get(
        "/",
        operation_id="getMetrics",
        summary="Prometheus metrics (text exposition format)",
        media_type="text/plain",
    )
    async def metrics(self, metrics: NamedDependency[HttpMetrics]) -> Response[bytes]:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)
