"""The versioned API under ``/api/v1``: one Controller per resource.

Later issues add their controllers to :data:`API_V1_CONTROLLERS`; ``create_app`` mounts the
list on one Router.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from litestar import Controller, Router, get
from litestar.types import ControllerRouterHandler

from entrypoints.http.analysis import ANALYSIS_CONTROLLERS
from entrypoints.http.billing import BILLING_CONTROLLERS
from entrypoints.http.identity.controllers import IDENTITY_CONTROLLERS
from entrypoints.http.interop import INTEROP_CONTROLLERS
from entrypoints.http.jobs import JOB_CONTROLLERS
from entrypoints.http.measure import MEASURE_CONTROLLERS
from entrypoints.http.models import MODEL_CONTROLLERS
from entrypoints.http.security import AuthenticationMiddleware
from entrypoints.http.studies import STUDY_CONTROLLERS
from entrypoints.http.workflow import WORKFLOW_CONTROLLERS

API_V1_PATH = "/api/v1"


class ApiInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    api_version: str
    docs_url: str
    openapi_url: str


class ApiInfoController(Controller):
    path = "/"
    tags = ["meta"]

    @get(
        "/",
        operation_id="getApiInfo",
        summary="What this API is and where its documentation is (public, like the docs)",
        exclude_from_auth=True,
    )
    async def info(self) -> ApiInfo:
        return ApiInfo(
            name="Hounsfield", api_version="v1", docs_url="/docs", openapi_url="/openapi.json"
        )


API_V1_CONTROLLERS: list[ControllerRouterHandler] = [
    ApiInfoController,
    *IDENTITY_CONTROLLERS,
    *STUDY_CONTROLLERS,
    *WORKFLOW_CONTROLLERS,
    *BILLING_CONTROLLERS,
    *INTEROP_CONTROLLERS,
    *MODEL_CONTROLLERS,
    *MEASURE_CONTROLLERS,
    *JOB_CONTROLLERS,
    *ANALYSIS_CONTROLLERS,
]


def api_v1_router(extra: Sequence[ControllerRouterHandler] = ()) -> Router:
    """Every route under ``/api/v1``; all but signing in need credentials."""
    return Router(
        path=API_V1_PATH,
        route_handlers=[*API_V1_CONTROLLERS, *extra],
        middleware=[AuthenticationMiddleware()],
    )
