"""The OpenAPI document and the interactive docs."""

from __future__ import annotations

import httpx


async def test_openapi_json_describes_the_routes_with_operation_ids(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Hounsfield"
    assert {"/health", "/health/detailed", "/metrics", "/api/v1"} <= set(document["paths"])
    operation_ids = [
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
    assert "getDetailedHealth" in operation_ids


async def test_the_docs_page_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()


async def test_the_api_root_points_to_the_docs(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1")

    assert response.status_code == 200
    assert response.json()["openapi_url"] == "/openapi.json"
