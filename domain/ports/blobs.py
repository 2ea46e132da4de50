"""Blob storage for study files, masks and exports."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from domain.errors import DomainError, InvalidInput

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
MAX_KEY_LENGTH = 1024


def validate_blob_key(key: str) -> str:
    """Return ``key`` when it is a safe blob key, else raise ``InvalidInput``.

    A key is ``/``-separated segments of letters, digits, ``.``, ``_`` and ``-``, each
    starting with a letter or digit: no absolute paths, no ``..``, no empty segments, no
    backslashes, so that no adapter can be steered outside its root.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"blob key {key[:80]!r} must have 1..{MAX_KEY_LENGTH} characters")
    for segment in key.split("/"):
        if not _SEGMENT.match(segment):
            raise InvalidInput(f"blob key {key[:80]!r} has an invalid segment {segment[:80]!r}")
    return key


def validate_blob_prefix(prefix: str) -> str:
    """``prefix`` without its trailing ``/`` when it is ``""`` or a valid key path, else
    raise ``InvalidInput`` (what :meth:`BlobStore.list_prefix` accepts)."""
    return validate_blob_key(prefix.removesuffix("/")) if prefix else ""


class BlobNotFound(DomainError):
    code = "blob-not-found"

    def __init__(self, key: str) -> None:
        super().__init__(f"blob {key!r} does not exist")
        self.key = key


class BlobInfo(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    size_bytes: int
    content_type: str | None = None


class BlobEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One object found by :meth:`BlobStore.list_prefix`."""

    key: str
    size_bytes: int
    modified_at: datetime
    """When the object was last written, timezone-aware UTC (the store's own clock)."""


class BlobWrite(msgspec.Struct, frozen=True):
    """One object of a :meth:`BlobStore.put_many` batch, its bytes in memory."""

    key: str
    data: bytes
    content_type: str | None = None


class BlobStore(Protocol):
    """put/get/stream/delete/exists, and presigned URLs where the backend has them.

    Writes are atomic: a reader sees the whole old object, the whole new one, or nothing.
    """

    @property
    def supports_presigned_urls(self) -> bool: ...

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> BlobInfo: ...

    async def put_many(self, writes: Sequence[BlobWrite]) -> list[BlobInfo]:
        """Write every object, each atomically as :meth:`put` does; their infos in order.

        Every key and content type is checked first, so an invalid one raises
        ``InvalidInput`` before anything is written. Every write has finished or failed
        before this returns (none is left running); then the first error in input order is
        raised. Objects written before a failure may exist: the caller deletes them. A
        store may stop at the first failure instead of attempting the rest. An empty
        batch returns ``[]``.
        """

    async def get(self, key: str) -> bytes:
        """The whole object; raises ``BlobNotFound``."""

    def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        """The object in chunks; raises ``BlobNotFound`` on first iteration when missing."""

    async def head(self, key: str) -> BlobInfo | None: ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    def list_prefix(self, prefix: str) -> AsyncIterator[BlobEntry]:
        """Every object whose key lies under ``prefix``, in no particular order.

        ``prefix`` is a key path (``staging`` or ``staging/``): ``staging/a/b`` is under it,
        ``staging2/a`` and ``staging`` itself are not. An empty prefix lists every object.
        Objects put or deleted while the listing runs may or may not appear.
        """

    async def presign_put(
        self, key: str, *, expires_in_s: int, content_type: str | None = None
    ) -> str:
        """A URL that accepts one HTTP PUT of the object until it expires."""

    async def presign_get(self, key: str, *, expires_in_s: int) -> str:
        """A URL that serves the object with HTTP GET until it expires."""

    async def ping(self) -> None:
        """Raise when the store cannot be reached (used by health checks)."""
