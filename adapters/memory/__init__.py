"""In-memory adapters for every port: the domain's tests and teams embedding the domain use
them, and they pass the same contract suites as the real adapters."""

from adapters.memory.audit_log import MemoryAuditLog
from adapters.memory.events import MemoryEventBus
from adapters.memory.unit_of_work import MemoryDatabase, MemoryUnitOfWork

try:  # written alongside; present once the storage work has landed
    from adapters.memory.blobs import MemoryBlobStore
except ImportError:  # pragma: no cover
    MemoryBlobStore = None  # type: ignore[assignment,misc]

__all__ = [
    "MemoryAuditLog",
    "MemoryBlobStore",
    "MemoryDatabase",
    "MemoryEventBus",
    "MemoryUnitOfWork",
]
