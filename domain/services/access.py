"""Permission and tenant rules shared by every use case.

Tenancy first: a resource of a centre the principal cannot see is reported as not found,
so its existence does not leak. Permission second: a principal who may see a resource but not
act on it gets ``PermissionDenied``.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from domain.errors import NotFound, PermissionDenied
from domain.identity import Principal, Role, Scope
from domain.values import Id


class _OfACentre(Protocol):
    @property
    def centre_id(self) -> Id | None: ...


_Resource = TypeVar("_Resource", bound=_OfACentre)


def ensure_visible(
    principal: Principal, centre_id: Id | None, resource: str, ident: object
) -> None:
    if not principal.can_see_centre(centre_id):
        raise NotFound(resource, ident)


def visible(
    principal: Principal, found: _Resource | None, resource: str, ident: object
) -> _Resource:
    """``found`` when it exists and the principal may see its centre; otherwise the same
    ``NotFound`` for both, so another centre's resource cannot be told from a missing one."""
    if found is None:
        raise NotFound(resource, ident)
    ensure_visible(principal, found.centre_id, resource, ident)
    return found


def require_role(principal: Principal, *roles: Role, action: str) -> None:
    if not principal.has_role(Role.ADMIN, *roles):
        allowed = ", ".join(sorted({Role.ADMIN.value, *(r.value for r in roles)}))
        raise PermissionDenied(f"only {allowed} may {action}")


def require_scope(principal: Principal, scope: Scope) -> None:
    if not principal.has_scope(scope):
        raise PermissionDenied(f"this API key lacks the '{scope.value}' scope")


def require_user(principal: Principal, *, action: str) -> None:
    """Some actions need a person (a key may not create users or keys, for instance)."""
    if principal.kind.value != "user":
        raise PermissionDenied(f"only a signed-in user may {action}")


def scoped_centre(principal: Principal, requested: Id | None) -> Id | None:
    """The centre a list is restricted to: an admin's choice (``None``: every centre), or the
    principal's own centre.

    Raises:
        PermissionDenied: a non-admin without a centre. Users and keys always have one; a
            principal built otherwise must not read ``None`` as "every centre".
    """
    if principal.is_admin:
        return requested
    if principal.centre_id is None:
        raise PermissionDenied("this principal belongs to no centre")
    return principal.centre_id
