"""The uvicorn factory and settings that shape the application."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog
from litestar import post
from litestar.params import RawBody
from litestar.testing import AsyncTestClient

from entrypoints.http import create_app_from_env
from tests.api.conftest import ClientFactory


@post(
    "/test-uploads",
    operation_id="createTestUpload",
    include_in_schema=False,
    exclude_from_auth=True,
)
async def upload(body: RawBody) -> dict[str, int]:
    return {"size_bytes": len(body)}


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


async def test_a_body_over_the_upload_limit_is_refused_with_413(
    make_client: ClientFactory,
) -> None:
    client: httpx.AsyncClient = await make_client(routes=[upload], max_upload_bytes="1000")

    small = await client.post("/api/v1/test-uploads", content=b"x" * 1000)
    large = await client.post("/api/v1/test-uploads", content=b"x" * 1001)

    assert small.status_code == 201
    assert large.status_code == 413
    assert large.headers["content-type"] == "application/problem+json"
    assert large.json()["type"] == "https://hounsfield.dev/problems/request-too-large"


@pytest.mark.postgres
async def test_the_uvicorn_factory_bootstraps_from_the_environment_in_its_lifespan(
    postgres_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:
    monkeypatch.setenv("HOUNSFIELD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HOUNSFIELD_DATABASE_URL", postgres_dsn)
    monkeypatch.setenv("HOUNSFIELD_STORAGE_URL", "memory://")
    monkeypatch.chdir(tmp_path)

    async with AsyncTestClient(create_app_from_env()) as client:
        response = await client.get("/health/detailed")

    assert response.status_code == 200, response.text
    assert response.json()["components"]["database"]["detail"].startswith("PostgreSQL")
