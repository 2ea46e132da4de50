"""``/openapi.json`` at the root; the Swagger UI lives at ``/docs`` (see ``create_app``)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

OPENAPI_MEDIA_TYPE = "application/vnd.oai.openapi+json"


@get("/openapi.json", operation_id="getOpenApiDocument", include_in_schema=False)
async def openapi_document(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    return Response(request.app.openapi_schema.to_schema(), media_type=OPENAPI_MEDIA_TYPE)
