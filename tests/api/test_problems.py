"""Every failure is an RFC 9457 problem document with a stable type URI."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from litestar import get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery

from domain.errors import (
    ConcurrentModification,
    Conflict,
    DomainError,
    InvalidInput,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from domain.ports.blobs import BlobNotFound
from tests.api.conftest import ClientFactory

PROBLEM_JSON = "application/problem+json"
BASE = "https://hounsfield.dev/problems/"

ERRORS: dict[str, DomainError] = {
    "not-found": NotFound("study", "7f3c"),
    "blob-not-found": BlobNotFound("studies/7f3c/1.dcm"),
    "permission-denied": PermissionDenied("only radiologists may verify reports"),
    "unauthenticated": Unauthenticated("the access token has expired"),
    "invalid-input": InvalidInput("window width must be positive"),
    "invalid-transition": InvalidTransition("report", "verified", "draft"),
    "conflict": Conflict("a study with this StudyInstanceUID already exists"),
    "concurrent-modification": ConcurrentModification("study", "7f3c", 3),
    "rate-limited": RateLimited("too many sign-in attempts", retry_after_s=30),
    "unavailable": Unavailable("cannot reach PostgreSQL at db:5432/hounsfield"),
}


class UnmappedRefusal(DomainError):
    code = "unmapped-refusal"


@get(
    "/test-errors/{name:str}",
    operation_id="raiseTestError",
    include_in_schema=False,
    exclude_from_auth=True,
)
async def raise_error(name: FromPath[str]) -> None:
    if name == "unmapped":
        raise UnmappedRefusal("refused by a rule nobody mapped yet")
    if name == "crash":
        raise RuntimeError("password=hunter2 at /srv/internal/module.py")
    raise ERRORS[name]


@get("/test-count", operation_id="countTest", include_in_schema=False, exclude_from_auth=True)
async def count(limit: FromQuery[int]) -> dict[str, int]:
    return {"limit": limit}


@pytest.fixture
async def client(make_client: ClientFactory) -> httpx.AsyncClient:
    return await make_client(routes=[raise_error, count])


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("not-found", 404),
        ("blob-not-found", 404),
        ("permission-denied", 403),
        ("unauthenticated", 401),
        ("invalid-input", 422),
        ("invalid-transition", 409),
        ("conflict", 409),
        ("concurrent-modification", 409),
        ("rate-limited", 429),
        ("unavailable", 503),
    ],
)
async def test_each_domain_error_becomes_its_problem_document(
    client: httpx.AsyncClient, code: str, status: int
) -> None:
    response = await client.get(f"/api/v1/test-errors/{code}")

    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == BASE + code
    assert body["status"] == status
    assert body["title"]
    assert body["detail"] == ERRORS[code].detail
    assert body["request_id"] == response.headers["x-request-id"]


async def test_rate_limited_says_when_to_retry(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/test-errors/rate-limited")

    assert response.headers["retry-after"] == "30"


async def test_unauthenticated_names_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/test-errors/unauthenticated")

    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_a_domain_error_nobody_mapped_is_still_a_client_problem(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/test-errors/unmapped")

    assert response.status_code == 422
    assert response.json()["type"] == BASE + "unmapped-refusal"


async def test_an_unexpected_exception_is_a_500_that_reveals_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/test-errors/crash")

    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == BASE + "internal-error"
    assert body["request_id"] == response.headers["x-request-id"]
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text
    assert "module.py" not in response.text


async def test_an_unknown_route_is_a_404_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/no-such-resource")

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == BASE + "not-found"
    assert response.json()["status"] == 404


async def test_a_wrong_method_is_a_405_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")

    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == BASE + "method-not-allowed"


async def test_a_malformed_parameter_is_a_400_problem_listing_what_is_wrong(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/test-count", params={"limit": "many"})

    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"] == BASE + "validation-error"
    assert [error["key"] for error in body["errors"]] == ["limit"]


async def test_a_missing_parameter_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/test-count")

    assert response.status_code == 400
    assert response.json()["type"] == BASE + "validation-error"


@post("/test-form", operation_id="formTest", include_in_schema=False, exclude_from_auth=True)
async def form(
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.MULTI_PART)],
) -> dict[str, str]:
    return data


@get("/test-decode", operation_id="decodeTest", include_in_schema=False, exclude_from_auth=True)
async def decode_in_a_handler() -> str:
    return b"\xff".decode()


async def test_a_form_field_that_is_not_utf8_is_a_400_problem(
    make_client: ClientFactory,
) -> None:
    client = await make_client(routes=[form])

    response = await client.post("/api/v1/test-form", files=[("file", (None, b"\x89PNG\xff"))])

    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["type"] == BASE + "bad-request"
    assert "UTF-8" in response.json()["detail"]


async def test_a_decoding_error_of_the_server_itself_stays_a_500(
    make_client: ClientFactory,
) -> None:
    client = await make_client(routes=[decode_in_a_handler])

    response = await client.get("/api/v1/test-decode")

    assert response.status_code == 500
    assert response.json()["type"] == BASE + "internal-error"
