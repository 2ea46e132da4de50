"""Blob storage adapters (filesystem, S3) and the storage URL that picks one."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from adapters.storage.filesystem import FilesystemBlobStore
from adapters.storage.health import StorageHealthProbe
from adapters.storage.s3 import S3BlobStore
from domain.errors import InvalidInput
from domain.ports.blobs import BlobStore

__all__ = [
    "FilesystemBlobStore",
    "S3BlobStore",
    "StorageHealthProbe",
    "blob_store_from_url",
]

ACCEPTED_FORMS = (
    "file:///absolute/path, a plain directory path, "
    "s3://bucket[/prefix]?endpoint=URL&region=NAME&allow_http=true "
    "(credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
    "access_key_id=&secret_access_key= parameters), or memory://"
)
_S3_PARAMETERS = frozenset(
    {"endpoint", "region", "allow_http", "access_key_id", "secret_access_key", "session_token"}
)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")  # two letters at least: not "C:"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def blob_store_from_url(
    url: str, *, signing_key: bytes | None = None, public_base_url: str | None = None
) -> BlobStore:
    """Build the blob store a storage URL names (``HOUNSFIELD_STORAGE_URL``).

    ``signing_key`` and ``public_base_url`` configure presigned URLs of the filesystem store
    (S3 signs its own; the memory store has none). A URL that cannot be used raises
    ``InvalidInput`` with one line naming the problem and the accepted forms; the message
    never repeats the query string, where credentials may be.
    """
    text = url.strip()
    if not text:
        raise _bad(url, "is empty")
    if not _SCHEME.match(text):
        return FilesystemBlobStore(
            Path(text), signing_key=signing_key, public_base_url=public_base_url
        )
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in {"", "localhost"}:
            raise _bad(url, "names a remote host; a file URL must be file:///absolute/path")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise _bad(url, "has a relative path; a file URL must be file:///absolute/path")
        if parts.query or parts.fragment:
            raise _bad(url, "has a query or fragment, which a file URL does not take")
        return FilesystemBlobStore(
            Path(path), signing_key=signing_key, public_base_url=public_base_url
        )
    if scheme == "memory":
        if parts.netloc or parts.path.strip("/") or parts.query:
            raise _bad(url, "has a host, path or query, which memory:// does not take")
        from adapters.memory.blobs import MemoryBlobStore

        return MemoryBlobStore()
    if scheme == "s3":
        return _s3_from_url(url, parts.netloc, parts.path, parts.query)
    raise _bad(url, f"has the unsupported scheme {parts.scheme!r}")


def _s3_from_url(url: str, netloc: str, path: str, query: str) -> S3BlobStore:
    if "@" in netloc:
        raise _bad(url, "carries credentials before the bucket; pass them as query parameters")
    bucket = netloc
    if not bucket:
        raise _bad(url, "has no bucket name")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _bad(url, "has a query string that cannot be parsed") from None
    names = [name for name, _ in pairs]
    unknown = sorted(set(names) - _S3_PARAMETERS)
    if unknown:
        raise _bad(url, f"has unknown parameters {', '.join(map(repr, unknown))}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise _bad(url, f"repeats parameters {', '.join(map(repr, repeated))}")
    params = dict(pairs)
    empty = sorted(name for name, value in params.items() if not value)
    if empty:
        raise _bad(url, f"has empty parameters {', '.join(map(repr, empty))}")
    allow_http = params.get("allow_http", "false").lower()
    if allow_http not in _TRUE | _FALSE:
        raise _bad(url, "has allow_http that is not true or false")
    endpoint = params.get("endpoint")
    if endpoint is not None:
        endpoint_parts = urlsplit(endpoint)
        if endpoint_parts.scheme not in {"http", "https"} or not endpoint_parts.netloc:
            raise _bad(url, "has an endpoint that is not an http(s) URL")
        if endpoint_parts.username or endpoint_parts.password:
            raise _bad(url, "has credentials inside the endpoint; use the credential parameters")
    if ("access_key_id" in params) != ("secret_access_key" in params):
        raise _bad(url, "needs both access_key_id and secret_access_key, or neither")
    prefix = path.strip("/") or None
    try:
        return S3BlobStore(
            bucket=bucket,
            prefix=prefix,
            endpoint=endpoint,
            region=params.get("region"),
            access_key_id=params.get("access_key_id"),
            secret_access_key=params.get("secret_access_key"),
            session_token=params.get("session_token"),
            allow_http=allow_http in _TRUE,
        )
    except InvalidInput as err:
        raise _bad(url, f"is not usable ({err.detail})") from err


def _bad(url: str, problem: str) -> InvalidInput:
    return InvalidInput(
        f"storage URL {_redacted(url)!r} {problem}; accepted forms: {ACCEPTED_FORMS}"
    )


def _redacted(url: str) -> str:
    """The URL without user info, query or fragment, cut short: safe to log or show."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "<unparseable>"
    host = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://{host}{parts.path}" if parts.scheme else parts.path
    if parts.query:
        shown += "?..."
    return " ".join(shown.split())[:120]
