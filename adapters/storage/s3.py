"""``BlobStore`` on any S3-compatible object store, through ``obstore``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import obstore
import structlog
from obstore.exceptions import BaseError as ObstoreError
from obstore.store import S3Store

from adapters.storage.presigning import check_expires_in
from domain.errors import InvalidInput, Unavailable
from domain.ports.blobs import (
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    BlobWrite,
    validate_blob_key,
    validate_blob_prefix,
)

if TYPE_CHECKING:
    from obstore import Attributes

log = structlog.get_logger(__name__)

_MULTIPART_CHUNK_BYTES = 5 * 1024 * 1024
_LIST_PAGE = 1000
"""Objects per page of a listing: S3's own maximum for one LIST request."""
_PARALLEL_PUTS = 8
"""Puts of one ``put_many`` in flight at once: enough to hide round trips, few enough not
to flood the store's connection pool."""
_FAILURES = (ObstoreError, OSError)
_GENERIC_CONTENT_TYPES = frozenset({"binary/octet-stream", "application/octet-stream"})
"""What S3 stores report when a put gave no type: ``head`` says ``None``, like other stores."""


class S3BlobStore:
    """Objects in one bucket (optionally under a prefix) of an S3-compatible store.

    Configuration is keyword-only; anything left ``None`` (credentials, region, endpoint)
    falls back to the usual ``AWS_*`` environment variables, read when the store is built.
    Puts of bytes are one atomic PUT; puts of an async iterable stream as a multipart
    upload that becomes visible only when it completes. A missing object is
    ``BlobNotFound`` (``None``/``False`` for ``head``/``exists``); any other failure to
    reach or use the store is ``Unavailable``, with a message that names the bucket and
    endpoint but never credentials.
    """

    def __init__(
        self,
        *,
        bucket: str,
        endpoint: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        prefix: str | None = None,
        allow_http: bool = False,
        virtual_hosted_style: bool = False,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 300.0,
        max_retries: int = 3,
        retry_timeout_s: float = 30.0,
    ) -> None:
        if not bucket:
            raise InvalidInput("S3 bucket name must not be empty")
        if (access_key_id is None) != (secret_access_key is None):
            raise InvalidInput("S3 access_key_id and secret_access_key must be given together")
        if prefix is not None:
            prefix = prefix.strip("/")
            if prefix:
                validate_blob_key(prefix)
        config: dict[str, Any] = {"virtual_hosted_style_request": virtual_hosted_style}
        for name, value in (
            ("endpoint", endpoint),
            ("region", region),
            ("access_key_id", access_key_id),
            ("secret_access_key", secret_access_key),
            ("session_token", session_token),
        ):
            if value is not None:
                config[name] = value
        self._bucket = bucket
        self._where = f"S3 bucket {bucket!r}" + (f" at {endpoint}" if endpoint else "")
        self._secrets = tuple(s for s in (secret_access_key, session_token) if s and len(s) >= 8)
        try:
            self._store = S3Store(
                bucket,
                prefix=prefix or None,
                config=config,  # type: ignore[arg-type]
                client_options={
                    "allow_http": allow_http,
                    "connect_timeout": timedelta(seconds=connect_timeout_s),
                    "timeout": timedelta(seconds=request_timeout_s),
                },
                retry_config={
                    "max_retries": max_retries,
                    "retry_timeout": timedelta(seconds=retry_timeout_s),
                },
            )
        except (ObstoreError, ValueError) as err:
            raise InvalidInput(
                f"{self._where} cannot be configured: {self._describe(err)}"
            ) from err

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def supports_presigned_urls(self) -> bool:
        return True

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> BlobInfo:
        validate_blob_key(key)
        attributes: Attributes | None = (
            {"Content-Type": content_type} if content_type is not None else None
        )
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                size = len(data)
                await obstore.put_async(
                    self._store, key, data, attributes=attributes, use_multipart=False
                )
            else:
                counter = _CountingStream(data)
                await obstore.put_async(
                    self._store,
                    key,
                    counter,
                    attributes=attributes,
                    chunk_size=_MULTIPART_CHUNK_BYTES,
                )
                size = counter.size_bytes
        except _FAILURES as err:
            self._fail("store", key, err)
        log.debug("blob.put", bucket=self._bucket, key=key, size_bytes=size)
        return BlobInfo(key=key, size_bytes=size, content_type=content_type)

    async def put_many(self, writes: Sequence[BlobWrite]) -> list[BlobInfo]:
        """Up to ``_PARALLEL_PUTS`` PUTs at a time; all of them finish (or fail) before
        the first error in input order is raised."""
        for write in writes:
            validate_blob_key(write.key)
        gate = asyncio.Semaphore(_PARALLEL_PUTS)

        async def put(write: BlobWrite) -> BlobInfo:
            async with gate:
                return await self.put(write.key, write.data, content_type=write.content_type)

        outcomes = await asyncio.gather(*(put(write) for write in writes), return_exceptions=True)
        infos: list[BlobInfo] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
            infos.append(outcome)
        return infos

    async def get(self, key: str) -> bytes:
        validate_blob_key(key)
        try:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        except FileNotFoundError as err:
            raise BlobNotFound(key) from err
        except _FAILURES as err:
            self._fail("read", key, err)

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        if chunk_size < 1:
            raise InvalidInput(f"chunk_size must be at least 1 byte, got {chunk_size}")
        validate_blob_key(key)
        try:
            result = await obstore.get_async(self._store, key)
        except FileNotFoundError as err:
            raise BlobNotFound(key) from err
        except _FAILURES as err:
            self._fail("read", key, err)
        chunks = result.stream(min_chunk_size=chunk_size)
        while True:
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except _FAILURES as err:
                self._fail("read", key, err)
            yield chunk

    async def head(self, key: str) -> BlobInfo | None:
        validate_blob_key(key)
        try:
            result = await obstore.get_async(self._store, key, options={"head": True})
        except FileNotFoundError:
            return None
        except _FAILURES as err:
            self._fail("inspect", key, err)
        content_type = result.attributes.get("Content-Type")
        if content_type in _GENERIC_CONTENT_TYPES:
            content_type = None
        return BlobInfo(
            key=key,
            size_bytes=result.meta["size"],
            content_type=str(content_type) if content_type is not None else None,
        )

    async def exists(self, key: str) -> bool:
        return await self.head(key) is not None

    async def delete(self, key: str) -> None:
        validate_blob_key(key)
        try:
            await obstore.delete_async(self._store, key)
        except FileNotFoundError:
            return
        except _FAILURES as err:
            self._fail("delete", key, err)

    async def list_prefix(self, prefix: str) -> AsyncIterator[BlobEntry]:
        """LIST requests page by page; obstore matches the prefix by whole path segments,
        so ``staging`` does not match ``staging2/``."""
        prefix = validate_blob_prefix(prefix)
        pages = obstore.list(self._store, prefix or None, chunk_size=_LIST_PAGE)
        while True:
            try:
                page = await pages.__anext__()
            except StopAsyncIteration:
                return
            except _FAILURES as err:
                self._fail("list", f"{prefix}/", err)
            for meta in page:
                modified_at = meta["last_modified"]
                if modified_at.tzinfo is None:
                    modified_at = modified_at.replace(tzinfo=UTC)
                yield BlobEntry(
                    key=meta["path"],
                    size_bytes=meta["size"],
                    modified_at=modified_at.astimezone(UTC),
                )

    async def presign_put(
        self, key: str, *, expires_in_s: int, content_type: str | None = None
    ) -> str:
        """A SigV4 URL for one PUT. Only the host is signed, so the client may send any
        ``Content-Type``; ``content_type`` is not enforced by the URL."""
        return await self._sign("PUT", key, expires_in_s)

    async def presign_get(self, key: str, *, expires_in_s: int) -> str:
        return await self._sign("GET", key, expires_in_s)

    async def ping(self) -> None:
        """List at most one object: fails when the endpoint, the credentials or the bucket
        are wrong, unlike a HEAD of a probe key, which cannot tell a missing bucket."""
        try:
            listing = obstore.list(self._store, chunk_size=1)
            async for _ in listing:
                break
        except _FAILURES as err:
            raise Unavailable(f"{self._where} is not usable: {self._describe(err)}") from err

    async def _sign(self, method: str, key: str, expires_in_s: int) -> str:
        validate_blob_key(key)
        check_expires_in(expires_in_s)
        try:
            return await obstore.sign_async(
                self._store,
                "PUT" if method == "PUT" else "GET",
                key,
                timedelta(seconds=expires_in_s),
            )
        except _FAILURES as err:
            raise Unavailable(
                f"{self._where} cannot sign a URL for {key!r}: {self._describe(err)}"
            ) from err

    def _fail(self, action: str, key: str, err: BaseException) -> NoReturn:
        raise Unavailable(
            f"{self._where} could not {action} blob {key!r}: {self._describe(err)}"
        ) from err

    def _describe(self, err: BaseException) -> str:
        """The first line of an obstore error, shortened, with any secret scrubbed."""
        message = str(err).strip()
        if "NoSuchBucket" in message:
            return "the bucket does not exist"
        lines = message.splitlines()
        text = lines[0] if lines else type(err).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text[:300]


class _CountingStream:
    """Passes chunks through to obstore while counting the bytes."""

    def __init__(self, source: AsyncIterable[bytes]) -> None:
        self._source = source
        self.size_bytes = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._source:
            self.size_bytes += len(chunk)
            yield chunk
