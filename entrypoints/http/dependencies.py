"""What handlers receive from the application: the container and the HTTP metrics.

Both live in ``app.state`` (set by :func:`entrypoints.http.app.create_app` or by the lifespan
of the uvicorn factory), so handlers never reach for globals.
"""

from __future__ import annotations

from litestar.datastructures import State

from entrypoints.bootstrap import Container
from entrypoints.http.observability import HttpMetrics

CONTAINER_STATE_KEY = "container"
METRICS_STATE_KEY = "http_metrics"


def provide_container(state: State) -> Container:
    container: Container = state[CONTAINER_STATE_KEY]
    return container


def provide_metrics(state: State) -> HttpMetrics:
    metrics: HttpMetrics = state[METRICS_STATE_KEY]
    return metrics
