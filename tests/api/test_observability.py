"""Request ids, the access log and Prometheus metrics."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import httpx
import pytest
import structlog
from litestar import get
from litestar.params import FromPath

from entrypoints.logging import configure_logging
from tests.api.conftest import ClientFactory


@get(
    "/test-things/{thing_id:str}",
    operation_id="getTestThing",
    include_in_schema=False,
    exclude_from_auth=True,
)
async def get_thing(thing_id: FromPath[str]) -> dict[str, str]:
    return {"id": thing_id}


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(routes=[get_thing])


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, object]]]]:
    """Configure JSON logs into a buffer; returns a reader of the lines so far."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    configure_logging(level="info", log_format="json", stream=buffer)

    def read() -> list[dict[str, object]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    yield read
    structlog.reset_defaults()
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


async def test_a_request_id_is_made_when_the_caller_sends_none(client: httpx.AsyncClient) -> None:
    first = await client.get("/health")
    second = await client.get("/health")

    assert first.headers["x-request-id"]
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_the_callers_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "ris-42.7"})

    assert response.headers["x-request-id"] == "ris-42.7"


async def test_an_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "x\tDROP TABLE studies;"})

    assert response.headers["x-request-id"] != "x\tDROP TABLE studies;"
    assert len(response.headers["x-request-id"]) == 32


async def test_an_unknown_route_also_carries_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere", headers={"X-Request-ID": "abc-1"})

    assert response.headers["x-request-id"] == "abc-1"
    assert response.json()["request_id"] == "abc-1"


async def test_the_access_log_has_the_request_id_and_route_but_no_query_string(
    client: httpx.AsyncClient, json_logs: Callable[[], list[dict[str, object]]]
) -> None:
    await client.get(
        "/api/v1/test-things/42",
        params={"patient_name": "Jane Doe"},
        headers={"X-Request-ID": "trace-9"},
    )

    lines = [line for line in json_logs() if line.get("event") == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "trace-9"
    assert line["route"] == "/api/v1/test-things/{thing_id}"
    assert line["status"] == 200
    assert "Jane" not in json.dumps(line)


async def test_metrics_count_requests_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    for thing in ("1", "2", "3"):
        await client.get(f"/api/v1/test-things/{thing}")
    await client.get("/nowhere/at/all")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'hounsfield_http_requests_total{method="GET",route="/api/v1/test-things/{thing_id}",'
        'status="200"} 3.0' in text
    )
    assert 'route="<unmatched>",status="404"} 1.0' in text
    assert "/api/v1/test-things/1" not in text
    assert "/nowhere" not in text
    assert "hounsfield_http_request_duration_seconds_bucket" in text


async def test_each_application_counts_only_its_own_requests(
    make_client: ClientFactory,
) -> None:
    first = await make_client()
    second = await make_client()
    await first.get("/health")

    text = (await second.get("/metrics")).text

    assert 'route="/health"' not in text
