"""A dict-backed ``BlobStore`` for tests and for teams embedding the domain."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import UTC, datetime

from domain.errors import InvalidInput, Unavailable
from domain.ports.blobs import (
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    BlobWrite,
    validate_blob_key,
    validate_blob_prefix,
)
from domain.ports.services import Clock


class MemoryBlobStore:
    """Keeps every object in a dict; a put becomes visible only once it is complete.

    It has no presigned URLs: ``supports_presigned_urls`` is False and the presign methods
    raise ``Unavailable``. A put records its time from ``clock`` (the system time when
    none is given), which :meth:`list_prefix` reports as ``modified_at``.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._objects: dict[str, tuple[bytes, str | None]] = {}
        self._modified: dict[str, datetime] = {}
        self._clock = clock

    @property
    def supports_presigned_urls(self) -> bool:
        return False

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> BlobInfo:
        validate_blob_key(key)
        if isinstance(data, bytes | bytearray | memoryview):
            body = bytes(data)
        else:
            body = b"".join([bytes(chunk) async for chunk in data])
        self._objects[key] = (body, content_type)
        self._modified[key] = self._clock.now() if self._clock else datetime.now(UTC)
        return BlobInfo(key=key, size_bytes=len(body), content_type=content_type)

    async def put_many(self, writes: Sequence[BlobWrite]) -> list[BlobInfo]:
        """One ``put`` after another (through ``self.put``, so a subclass that fails puts
        fails batches too); every key is checked before the first is written."""
        for write in writes:
            validate_blob_key(write.key)
        return [
            await self.put(write.key, write.data, content_type=write.content_type)
            for write in writes
        ]

    async def get(self, key: str) -> bytes:
        validate_blob_key(key)
        try:
            return self._objects[key][0]
        except KeyError:
            raise BlobNotFound(key) from None

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        if chunk_size < 1:
            raise InvalidInput(f"chunk_size must be at least 1 byte, got {chunk_size}")
        body = await self.get(key)
        for start in range(0, len(body), chunk_size):
            yield body[start : start + chunk_size]

    async def head(self, key: str) -> BlobInfo | None:
        validate_blob_key(key)
        stored = self._objects.get(key)
        if stored is None:
            return None
        body, content_type = stored
        return BlobInfo(key=key, size_bytes=len(body), content_type=content_type)

    async def exists(self, key: str) -> bool:
        validate_blob_key(key)
        return key in self._objects

    async def delete(self, key: str) -> None:
        validate_blob_key(key)
        self._objects.pop(key, None)
        self._modified.pop(key, None)

    async def list_prefix(self, prefix: str) -> AsyncIterator[BlobEntry]:
        """A snapshot taken at the first iteration, so the caller may delete as it goes."""
        prefix = validate_blob_prefix(prefix)
        start = f"{prefix}/" if prefix else ""
        found = [
            BlobEntry(key=key, size_bytes=len(body), modified_at=self._modified[key])
            for key, (body, _) in self._objects.items()
            if key.startswith(start)
        ]
        for entry in found:
            yield entry

    async def presign_put(
        self, key: str, *, expires_in_s: int, content_type: str | None = None
    ) -> str:
        validate_blob_key(key)
        raise _no_presigning()

    async def presign_get(self, key: str, *, expires_in_s: int) -> str:
        validate_blob_key(key)
        raise _no_presigning()

    async def ping(self) -> None:
        return None


def _no_presigning() -> Unavailable:
    return Unavailable(
        "presigned URLs are not supported by the in-memory blob store; "
        "check supports_presigned_urls before asking for one"
    )
