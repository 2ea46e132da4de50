"""Authentication and rate limits for everything under ``/api/v1``.

A middleware (not a per-handler dependency) so that a route added later is protected without
anyone remembering to ask: only handlers marked ``exclude_from_auth=True`` (signing in, the
API root) are reachable without credentials. Credentials are a bearer token
(``Authorization: Bearer <jwt>``) or an API key (``X-API-Key: hf_...`` or
``Authorization: Bearer hf_...``). The resolved
:class:`~domain.identity.Principal` is put in the connection state, where handlers get it
through the ``principal`` dependency.
"""

from __future__ import annotations

import re
from typing import Any

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from domain.errors import RateLimited, Unauthenticated
from domain.identity import Principal
from entrypoints.bootstrap import Container
from entrypoints.http.dependencies import CONTAINER_STATE_KEY

PRINCIPAL_STATE_KEY = "principal"
API_KEY_PREFIX = "hf_"
CENTRE_LIMIT_FACTOR = 10
"""A centre as a whole may make this many times the requests of one client."""

_UPLOAD_PATHS = re.compile(
    r"^/api/v1/(studies|studies/from-storage|upload|uploads/presign|anonymize/batch)$"
    r"|^/dicomweb/studies(/[^/]+)?$"
)
_ANALYSIS_PATHS = re.compile(r"^/api/v1/(jobs|measure)$")


def rate_category(method: str, path: str) -> str | None:
    """Which budget a request spends: uploads, analysis starts, or reads."""
    if method == "POST" and _UPLOAD_PATHS.match(path):
        return "uploads"
    if method == "POST" and _ANALYSIS_PATHS.match(path):
        return "analyses"
    if method in ("GET", "HEAD"):
        return "reads"
    return None


def presented_credential(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[str, str]:
    """``("token"|"api_key", value)`` from the headers (or ``token`` query parameter on
    websockets, which browsers cannot give headers)."""
    key = connection.headers.get("x-api-key")
    if key:
        return "api_key", key.strip()
    authorization = connection.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return ("api_key" if value.startswith(API_KEY_PREFIX) else "token"), value
    if connection.scope["type"] == ScopeType.WEBSOCKET:
        token = connection.query_params.get("token")
        if token:
            return ("api_key" if token.startswith(API_KEY_PREFIX) else "token"), token
    raise Unauthenticated("sign in: send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'")


async def authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], container: Container
) -> Principal:
    kind, value = presented_credential(connection)
    auth = container.services.auth
    if kind == "api_key":
        principal = await auth.principal_for_api_key(value)
    else:
        principal = await auth.principal_for_token(value)
    client = connection.scope.get("client")
    state = connection.scope.get("state", {})
    return principal.with_origin(
        client_address=client[0] if client else None, request_id=state.get("request_id")
    )


async def enforce_rate_limits(container: Container, principal: Principal, category: str) -> None:
    settings = container.settings
    per_client = {
        "uploads": settings.rate_limit_uploads_per_minute,
        "analyses": settings.rate_limit_analyses_per_minute,
        "reads": settings.rate_limit_reads_per_minute,
    }[category]
    budgets = [(f"rate:{category}:{principal.kind.value}:{principal.id}", per_client)]
    if principal.centre_id is not None:
        budgets.append(
            (f"rate:{category}:centre:{principal.centre_id}", per_client * CENTRE_LIMIT_FACTOR)
        )
    decisions = await container.services.limiter.hit_all(budgets, window_s=60)
    for (key, limit), decision in zip(budgets, decisions, strict=False):
        if not decision.allowed:
            scope = "this centre" if ":centre:" in key else "this client"
            raise RateLimited(
                f"{scope} made more than {limit} {category} requests this minute",
                decision.retry_after_s,
            )


class AuthenticationMiddleware(ASGIMiddleware):
    """Resolves the Principal of every request; handlers opt out with
    ``exclude_from_auth=True`` (only signing in and the API root do)."""

    scopes = (ScopeType.HTTP, ScopeType.WEBSOCKET)
    exclude_opt_key = "exclude_from_auth"

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope, receive, send)
        container: Container = connection.app.state[CONTAINER_STATE_KEY]
        principal = await authenticate(connection, container)
        category = rate_category(scope.get("method", "GET"), scope["path"])  # type: ignore[arg-type]
        if category is not None:
            await enforce_rate_limits(container, principal, category)
        scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal
        await next_app(scope, receive, send)


def provide_principal(scope: Scope) -> Principal:
    principal: Principal = scope["state"][PRINCIPAL_STATE_KEY]
    return principal
