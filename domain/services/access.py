"""Permission and tenant rules shared by every use case.

Tenancy first: a resource of a centre the principal cannot see is reported as not found,
so its existence does not leak. Permission second: a principal who may see a resource but not
act on it gets ``PermissionDenied``.
"""

from __future__ import annotations

from domain.errors import NotFound, PermissionDenied
from domain.identity import Principal, Role, Scope
from domain.values import Id


def ensure_visible(
    principal: Principal, centre_id: Id | None, resource: str, ident: object
) -> None:
    if not principal.can_see_centre(centre_id):
        raise NotFound(resource, ident)


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
