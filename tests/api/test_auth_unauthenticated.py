"""Nothing under /api/v1 answers without credentials, except signing in and the API root.

The routes are read from the application itself, so a route added later is covered without
anyone listing it here. Framework-generated ``OPTIONS`` handlers are left out (a CORS
preflight must be answerable without credentials).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from litestar.routes import HTTPRoute

from tests.api.conftest import Served, serve
from tests.api.identity_fixtures import World, assert_problem

PUBLIC_API_ROUTES = {("POST", "/api/v1/auth/token"), ("GET", "/api/v1")}
PUBLIC_PAGES = ["/health", "/health/detailed", "/metrics", "/docs", "/openapi.json"]
_PARAMETER = re.compile(r"\{(\w+):(\w+)\}")


def concrete(path: str) -> str:
    """A requestable path for a route template: any uuid, integer or string will do."""
    samples = {"uuid": str(uuid.uuid4()), "int": "1"}
    return _PARAMETER.sub(lambda m: samples.get(m.group(2), "anything"), path)


def api_routes(served: Served) -> list[tuple[str, str]]:
    return sorted(
        (method, route.path)
        for route in served.app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith("/api/v1")
        for method in route.methods - {"OPTIONS", "HEAD"}
    )


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    """One application for the module: nothing here gets past authentication to change it."""
    async with AsyncExitStack() as stack:
        yield await serve(stack, tmp_path_factory.mktemp("unauthenticated") / "data")


async def test_every_api_route_but_sign_in_and_the_root_needs_credentials(served: Served) -> None:
    routes = api_routes(served)
    assert ("GET", "/api/v1/audit") in routes
    assert ("DELETE", "/api/v1/api-keys/{key_id:uuid}") in routes
    answers: dict[str, int] = {}
    for method, path in routes:
        if (method, path) in PUBLIC_API_ROUTES:
            continue
        response = await served.client.request(method, concrete(path))
        answers[f"{method} {path}"] = response.status_code
        if response.status_code == 401:
            assert_problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")

    assert len(answers) >= 15
    assert {route: status for route, status in answers.items() if status != 401} == {}


async def test_the_api_root_answers_without_credentials(served: Served) -> None:
    response = await served.client.get("/api/v1")

    assert response.status_code == 200
    assert response.json()["docs_url"] == "/docs"


async def test_signing_in_needs_no_credentials(shared_world: World) -> None:
    response = await shared_world.client.post(
        "/api/v1/auth/token", data={"username": "root", "password": "wrong password here"}
    )

    assert_problem(response, 401)
    assert response.json()["detail"] == "invalid username or password"


@pytest.mark.parametrize("path", PUBLIC_PAGES)
async def test_health_metrics_and_docs_stay_public(served: Served, path: str) -> None:
    response = await served.client.get(path)

    assert response.status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic cm9vdDpwYXNzd29yZA=="},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Bearer hf_not-a-key"},
        {"X-API-Key": "hf_not-a-key"},
        {"X-API-Key": "not-a-key"},
    ],
    ids=[
        "basic",
        "empty-bearer",
        "garbage-token",
        "garbage-bearer-key",
        "garbage-key",
        "no-prefix",
    ],
)
async def test_unusable_credentials_are_refused_like_missing_ones(
    served: Served, headers: dict[str, str]
) -> None:
    response = await served.client.get("/api/v1/users", headers=headers)

    assert_problem(response, 401)
    assert "www-authenticate" in response.headers


async def test_a_refused_request_is_refused_before_its_body_is_read(served: Served) -> None:
    response = await served.client.post(
        "/api/v1/users", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert_problem(response, 401)


def test_sample_paths_fill_every_parameter() -> None:
    path = concrete("/api/v1/users/{user_id:uuid}/files/{name:str}/{n:int}")

    assert "{" not in path
    assert path.endswith("/1")
    assert httpx.URL(path).path == path
