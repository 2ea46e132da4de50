"""Errors as RFC 9457 problem documents, each error class mapped once.

Every response for a failed request is ``application/problem+json`` with a stable ``type``
URI (``https://hounsfield.dev/problems/<code>``), a ``title``, the ``status``, a ``detail``
for people, and the ``request_id`` to quote when reporting it. Unexpected exceptions become
a 500 document that reveals nothing about the internals; they are logged with the request id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.types import ExceptionHandlersMap

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

log = structlog.get_logger(__name__)

PROBLEM_BASE_URI = "https://hounsfield.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    status: int
    title: str


DOMAIN_PROBLEMS: dict[type[DomainError], ProblemType] = {
    NotFound: ProblemType(404, "Resource not found"),
    BlobNotFound: ProblemType(404, "Stored object not found"),
    PermissionDenied: ProblemType(403, "Permission denied"),
    Unauthenticated: ProblemType(401, "Authentication required"),
    InvalidInput: ProblemType(422, "Invalid input"),
    InvalidTransition: ProblemType(409, "Invalid state transition"),
    Conflict: ProblemType(409, "Conflict"),
    ConcurrentModification: ProblemType(409, "Concurrent modification"),
    RateLimited: ProblemType(429, "Too many requests"),
    Unavailable: ProblemType(503, "Service unavailable"),
}
"""Status and title per domain error class; the ``type`` URI comes from the class's ``code``.
A subclass not listed here takes the entry of its nearest listed ancestor."""

_HTTP_CODES = {
    400: "bad-request",
    401: "unauthenticated",
    403: "permission-denied",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "request-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
    503: "unavailable",
}


def problem_type_uri(code: str) -> str:
    return PROBLEM_BASE_URI + code


def domain_error_to_problem(exc: DomainError) -> ProblemDetailsException:
    problem = _nearest_problem(type(exc))
    headers: dict[str, str] = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(0, int(exc.retry_after_s)))
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="hounsfield"'
    return ProblemDetailsException(
        status_code=problem.status,
        type_=problem_type_uri(exc.code),
        title=problem.title,
        detail=exc.detail,
        headers=headers or None,
    )


def _nearest_problem(cls: type[DomainError]) -> ProblemType:
    for ancestor in cls.__mro__:
        if ancestor in DOMAIN_PROBLEMS:
            return DOMAIN_PROBLEMS[ancestor]
    # A domain error nobody mapped yet: the request was refused on purpose, so a 4xx.
    return ProblemType(422, "Request refused")


def validation_error_to_problem(exc: ValidationException) -> ProblemDetailsException:
    errors = exc.extra if isinstance(exc.extra, list) else []
    return ProblemDetailsException(
        status_code=400,
        type_=problem_type_uri("validation-error"),
        title="The request is malformed",
        detail=exc.detail or "Validation failed",
        extra={"errors": errors},
        headers=exc.headers,
    )


def http_error_to_problem(exc: HTTPException) -> ProblemDetailsException:
    status = exc.status_code
    phrase = _phrase(status)
    code = _HTTP_CODES.get(status)
    detail = exc.detail if exc.detail and exc.detail != phrase else None
    if status >= 500:
        log.error("server error", status=status, exc_info=exc)
        detail = None  # framework internals stay in the logs
    return ProblemDetailsException(
        status_code=status,
        type_=problem_type_uri(code) if code else "about:blank",
        title=phrase,
        detail=detail or phrase,
        headers=exc.headers,
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    request: Request[Any, Any, Any], exc: ProblemDetailsException
) -> Response[Any]:
    """Render a problem exception, adding the request id as an extension member."""
    body: dict[str, Any] = {
        "type": exc.type_ or "about:blank",
        "title": exc.title or _phrase(exc.status_code),
        "status": exc.status_code,
        "detail": exc.detail,
    }
    if exc.instance is not None:
        body["instance"] = exc.instance
    if isinstance(exc.extra, Mapping):
        body.update(exc.extra)
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id is not None:
        body["request_id"] = request_id
    return Response(
        body,
        status_code=exc.status_code,
        headers=exc.headers,
        media_type=PROBLEM_MEDIA_TYPE,
    )


def internal_error_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Any exception nobody mapped: logged in full here, nothing of it in the response."""
    log.error(
        "unhandled exception",
        route=request.scope.get("path_template"),
        method=request.method,
        exc_info=exc,
    )
    problem = ProblemDetailsException(
        status_code=500,
        type_=problem_type_uri("internal-error"),
        title="Internal server error",
        detail="The server could not complete the request; quote the request id when reporting it.",
    )
    return problem_response(request, problem)


_REQUEST_PARSERS = ("litestar._multipart", "litestar._kwargs", "litestar.connection")
"""Litestar modules that decode what the client sent."""


def undecodable_text_response(
    request: Request[Any, Any, Any], exc: UnicodeDecodeError
) -> Response[Any]:
    """Text the client sent that is not UTF-8 is a 400; anywhere else it is our bug, a 500.

    Litestar decodes each multipart part without a filename as UTF-8 text and lets the error
    escape, so bytes sent as a form field (a file part missing its filename) would be a 500.
    """
    innermost = exc.__traceback__
    while innermost is not None and innermost.tb_next is not None:
        innermost = innermost.tb_next
    module = "" if innermost is None else innermost.tb_frame.f_globals.get("__name__", "")
    if not module.startswith(_REQUEST_PARSERS):
        return internal_error_response(request, exc)
    problem = ProblemDetailsException(
        status_code=400,
        type_=problem_type_uri("bad-request"),
        title="The request is malformed",
        detail="A text field of the request is not valid UTF-8 "
        "(a file must be sent as a part with a filename).",
    )
    return problem_response(request, problem)


def problem_details_plugin() -> ProblemDetailsPlugin:
    """Renders ``ProblemDetailsException`` raised anywhere with :func:`problem_response`."""
    return ProblemDetailsPlugin(ProblemDetailsConfig(exception_handler=problem_response))


def exception_handlers() -> ExceptionHandlersMap:
    """One handler per error class: domain errors, validation, HTTP errors, the 500 catch-all.

    Litestar picks the handler of the nearest class in the exception's MRO, so a domain error
    subclass nobody listed is still a problem document of its nearest listed ancestor.
    """
    domain_classes: list[type[Exception]] = [DomainError, *DOMAIN_PROBLEMS]
    handlers: ExceptionHandlersMap = {cls: _via(domain_error_to_problem) for cls in domain_classes}
    handlers[HTTPException] = _via(http_error_to_problem)
    handlers[ValidationException] = _via(validation_error_to_problem)
    handlers[UnicodeDecodeError] = undecodable_text_response
    handlers[Exception] = internal_error_response
    return handlers


def _via(
    convert: Callable[[Any], ProblemDetailsException],
) -> Callable[[Request[Any, Any, Any], Any], Response[Any]]:
    def handle(request: Request[Any, Any, Any], exc: Any) -> Response[Any]:
        return problem_response(request, convert(exc))

    return handle
