"""The Litestar application.

:func:`create_app` serves a container that is already bootstrapped (``hounsfield serve``,
tests). :func:`create_app_from_env` is for running under an ASGI server directly::

    uvicorn --factory entrypoints.http.app:create_app_from_env

It reads the settings at call time and bootstraps in the application's lifespan.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.types import ControllerRouterHandler

from entrypoints.bootstrap import Container, bootstrap
from entrypoints.http.api import api_v1_router
from entrypoints.http.dependencies import CONTAINER_STATE_KEY, METRICS_STATE_KEY
from entrypoints.http.dicomweb import dicomweb_router
from entrypoints.http.health import HealthController, MetricsController
from entrypoints.http.observability import HttpMetrics, RequestContextMiddleware
from entrypoints.http.openapi import openapi_document
from entrypoints.http.problems import exception_handlers, problem_details_plugin
from entrypoints.http.websockets import WEBSOCKET_HANDLERS
from entrypoints.jobs import api_process_sweeps
from entrypoints.logging import configure_logging
from entrypoints.settings import Settings


def create_app(
    container: Container,
    *,
    extra_api_handlers: Sequence[ControllerRouterHandler] = (),
) -> Litestar:
    """The HTTP application over ``container`` (which the caller closes).

    Args:
        container: a bootstrapped container.
        extra_api_handlers: more handlers under ``/api/v1`` (tests, embedding teams).
    """
    return _build_app(container.settings, container=container, extra=extra_api_handlers)


def create_app_from_env() -> Litestar:
    """An application that loads settings now and bootstraps when the server starts.

    It is a whole API process: besides the container, it runs the job recovery sweep, the
    sweep of abandoned staged uploads (and, without a broker, the in-process job threads),
    as ``hounsfield serve`` does; each of ``serve --workers N``'s processes is one of these.
    """
    settings = Settings.from_env()
    configure_logging(level=settings.log_level, log_format=settings.effective_log_format)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        container = await bootstrap(settings)
        app.state[CONTAINER_STATE_KEY] = container
        try:
            async with api_process_sweeps(container):
                yield
        finally:
            await container.aclose()

    return _build_app(settings, container=None, lifespan=lifespan)


def _build_app(
    settings: Settings,
    *,
    container: Container | None,
    extra: Sequence[ControllerRouterHandler] = (),
    lifespan: object = None,
) -> Litestar:
    metrics = HttpMetrics()
    state = State({METRICS_STATE_KEY: metrics})
    if container is not None:
        state[CONTAINER_STATE_KEY] = container
    app = Litestar(
        route_handlers=[
            HealthController,
            MetricsController,
            openapi_document,
            api_v1_router(extra),
            dicomweb_router(),
            *WEBSOCKET_HANDLERS,
        ],
        openapi_config=OpenAPIConfig(
            title="Hounsfield",
            version=_version(),
            description="Medical-imaging AI platform: studies, analyses, reports, billing.",
            path="/docs",
            render_plugins=[
                SwaggerRenderPlugin(path="/"),
                JsonRenderPlugin(path="/openapi.json"),
            ],
        ),
        plugins=[problem_details_plugin()],
        exception_handlers=exception_handlers(),
        state=state,
        lifespan=[lifespan] if lifespan is not None else [],  # type: ignore[list-item]
        request_max_body_size=settings.max_upload_bytes,
        logging_config=None,
        debug=False,
    )
    # Wrap the whole handler stack, not each route: unknown routes (404) and errors must
    # also get a request id, an access line and a metrics sample.
    app.asgi_handler = RequestContextMiddleware(app.asgi_handler, metrics=metrics)
    return app


def _version() -> str:
    try:
        return importlib.metadata.version("hounsfield")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0+unknown"
