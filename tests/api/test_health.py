"""``/health`` and ``/health/detailed`` through the real application."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from domain.errors import Unavailable
from tests.api.conftest import ClientFactory
from tests.fixtures.services import require_server

COMPONENTS = {"database", "storage", "queue", "models"}


class BrokenProbe:
    component = "search-index"

    async def check(self) -> str | None:
        raise Unavailable("search index at 10.0.0.9:9200 refused the connection")


def install_model(models_dir: Path, name: str) -> None:
    (models_dir / name).mkdir(parents=True)
    (models_dir / name / "manifest.json").write_text(json.dumps({"id": name}))


@pytest.fixture
async def listening_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_liveness_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_detailed_health_reports_every_component_with_its_response_time(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/health/detailed")

    components = response.json()["components"]
    assert set(components) == COMPONENTS
    for report in components.values():
        assert report["status"] in {"ok", "degraded", "error"}
        assert isinstance(report["response_time_ms"], int | float)
        assert report["response_time_ms"] >= 0
    assert components["database"] == {**components["database"], "status": "ok"}
    assert components["storage"]["status"] == "ok"
    assert components["queue"]["status"] == "ok"
    assert "in-process" in components["queue"]["detail"]


async def test_storage_is_the_blob_directory_in_the_data_dir(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    storage = (await client.get("/health/detailed")).json()["components"]["storage"]

    assert storage["status"] == "ok"
    assert storage["detail"] == str(tmp_path / "data" / "blobs")


async def test_no_models_installed_is_degraded_but_still_healthy(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(models_dir=str(tmp_path / "models"))

    response = await client.get("/health/detailed")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    models = response.json()["components"]["models"]
    assert models["status"] == "degraded"
    assert "no models installed" in models["detail"]


async def test_installed_models_are_listed_and_everything_is_ok(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    install_model(tmp_path / "models", "demo-unet")
    client = await make_client(models_dir=str(tmp_path / "models"))

    response = await client.get("/health/detailed")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert "demo-unet" in response.json()["components"]["models"]["detail"]


async def test_a_failing_component_makes_the_report_503_with_its_reason(
    make_client: ClientFactory,
) -> None:
    client = await make_client(probes=[BrokenProbe()])

    response = await client.get("/health/detailed")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["components"]["search-index"]["status"] == "error"
    assert "refused the connection" in body["components"]["search-index"]["detail"]
    assert body["components"]["database"]["status"] == "ok"


async def test_liveness_stays_ok_while_a_dependency_fails(make_client: ClientFactory) -> None:
    client = await make_client(probes=[BrokenProbe()])

    assert (await client.get("/health")).status_code == 200


async def test_an_unreachable_broker_is_an_error(make_client: ClientFactory) -> None:
    client = await make_client(broker_url="redis://127.0.0.1:1/0")

    response = await client.get("/health/detailed")

    assert response.status_code == 503
    queue = response.json()["components"]["queue"]
    assert queue["status"] == "error"
    assert "127.0.0.1:1" in queue["detail"]


async def test_a_configured_broker_is_pinged_through_the_job_queue(
    make_client: ClientFactory, listening_port: int
) -> None:
    require_server("Redis", "127.0.0.1", 6379)
    redis_client = await make_client(broker_url="redis://127.0.0.1:6379/0")
    not_redis = await make_client(broker_url=f"redis://127.0.0.1:{listening_port}/0")

    ok = (await redis_client.get("/health/detailed")).json()["components"]["queue"]
    wrong = (await not_redis.get("/health/detailed")).json()["components"]["queue"]

    assert ok["status"] == "ok" and ok["detail"] == "redis://127.0.0.1:6379/0"
    assert wrong["status"] == "error" and "unavailable" in wrong["detail"]


@pytest.mark.postgres
async def test_detailed_health_against_postgresql(
    make_client: ClientFactory, postgres_dsn: str
) -> None:
    client = await make_client(database="postgres", database_url=postgres_dsn)

    response = await client.get("/health/detailed")

    assert response.status_code == 200
    components = response.json()["components"]
    assert set(components) == COMPONENTS
    assert components["database"]["status"] == "ok"
    assert components["database"]["detail"].startswith("PostgreSQL ")
    assert components["storage"]["status"] == "ok"
