"""One error hierarchy for the whole domain.

Every error a use case raises derives from :class:`DomainError`; the HTTP layer maps each
class once to a problem document (RFC 9457) with a stable ``type`` URI.
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    code: str = "domain-error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(DomainError):
    """The resource does not exist, or belongs to another centre (never reported as forbidden)."""

    code = "not-found"

    def __init__(self, resource: str, identifier: object) -> None:
        super().__init__(f"{resource} {identifier!s} was not found")
        self.resource = resource
        self.identifier = identifier


class PermissionDenied(DomainError):
    """The principal may see the resource but may not perform this action."""

    code = "permission-denied"


class Unauthenticated(DomainError):
    """No valid credentials were presented."""

    code = "unauthenticated"


class InvalidInput(DomainError):
    """A value given to a use case or constructor is not acceptable."""

    code = "invalid-input"


class InvalidTransition(DomainError):
    """A state machine was asked for a move its transition table does not allow."""

    code = "invalid-transition"

    def __init__(self, machine: str, current: str, requested: str) -> None:
        super().__init__(f"{machine} cannot move from '{current}' to '{requested}'")
        self.machine = machine
        self.current = current
        self.requested = requested


class Conflict(DomainError):
    """The request conflicts with the current state of a resource (duplicates, immutability)."""

    code = "conflict"


class ConcurrentModification(Conflict):
    """Another writer changed the aggregate since it was read (optimistic concurrency)."""

    code = "concurrent-modification"

    def __init__(self, resource: str, identifier: object, expected_version: int) -> None:
        super().__init__(
            f"{resource} {identifier!s} was modified concurrently "
            f"(expected version {expected_version}); reload and retry"
        )
        self.resource = resource
        self.identifier = identifier
        self.expected_version = expected_version


class RateLimited(DomainError):
    """Too many requests in the current window."""

    code = "rate-limited"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class Unavailable(DomainError):
    """A dependency the use case needs (database, storage, queue) cannot be reached."""

    code = "unavailable"


class PriceMissing(Conflict):
    """A study cannot be invoiced: its centre has no active price for its modality."""

    code = "price-missing"
