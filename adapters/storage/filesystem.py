"""``BlobStore`` on a local directory: atomic writes (temp file, fsync, rename, fsync dir)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISLNK, S_ISREG
from typing import BinaryIO, TypeVar

import structlog

from adapters.storage.presigning import UrlSigner, presigning_not_configured
from domain.errors import Conflict, InvalidInput, Unavailable
from domain.ports.blobs import (
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    BlobWrite,
    validate_blob_key,
    validate_blob_prefix,
)

log = structlog.get_logger(__name__)

_T = TypeVar("_T")
_CONTENT_TYPE_SUFFIX = ".content-type"
_CONTENT_TYPE_ATTRIBUTE = "user.hounsfield.content_type"
_HAS_XATTRS = hasattr(os, "setxattr")
_NO_XATTR_ERRNOS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM})
_MAX_CONTENT_TYPE_LENGTH = 255


class FilesystemBlobStore:
    """Objects are files under ``root`` named by their key.

    Every key is checked with ``validate_blob_key`` and its resolved path must lie inside
    ``root``, so neither ``..`` nor a symlink can lead outside. A put writes a hidden temp
    file next to the target, fsyncs it, renames it over the target and fsyncs the directory:
    readers see the whole old object or the whole new one; ``put_many`` writes a batch the
    same way in one worker thread and fsyncs each directory once, after the last rename.
    The content type, when given, lives in the file's extended attribute
    ``user.hounsfield.content_type`` (set before the fsync, so it is as durable as the
    bytes), or, where the filesystem has no user attributes, in a hidden sidecar file
    (``.<name>.content-type``, also read for objects stored that way before); hidden names
    can never be keys.

    A key cannot be both an object and the prefix of another (``a`` and ``a/b``): the
    second put raises ``Conflict``.

    With ``signing_key`` and ``public_base_url`` it hands out HMAC-signed URLs that an HTTP
    route serving ``public_base_url`` checks with :meth:`verify_presigned`.
    """

    def __init__(
        self,
        root: Path,
        *,
        signing_key: bytes | None = None,
        public_base_url: str | None = None,
        extended_attributes: bool = True,
    ) -> None:
        """``extended_attributes=False`` keeps content types in sidecar files only."""
        self._root = Path(root).expanduser().resolve()
        self._xattrs = extended_attributes and _HAS_XATTRS
        self._signer = (
            UrlSigner(signing_key=signing_key, public_base_url=public_base_url)
            if signing_key is not None and public_base_url is not None
            else None
        )

    @property
    def root(self) -> Path:
        return self._root

    @property
    def supports_presigned_urls(self) -> bool:
        return self._signer is not None

    def path_for(self, key: str) -> Path:
        """The file that holds ``key`` (it may not exist); raises ``InvalidInput`` for a key
        that is not valid or whose path would resolve outside the root.

        A valid key has no ``..``, empty or absolute segment, and the root is resolved at
        construction, so the lexical join is the real path unless a component under the
        root is a symlink (one an operator or another process put there): only then is the
        path resolved and checked. That costs one ``lstat`` per key segment (stopping at
        the first missing one) instead of ``resolve()``'s one per component of the whole
        absolute path, root included.
        """
        validate_blob_key(key)
        segments = key.split("/")
        path = self._root.joinpath(*segments)
        if not self._symlink_under_root(segments):
            return path
        resolved = path.resolve()
        if resolved == self._root or not resolved.is_relative_to(self._root):
            raise InvalidInput(f"blob key {key!r} resolves outside the blob store root")
        return resolved

    def _symlink_under_root(self, segments: list[str]) -> bool:
        current = str(self._root)
        for segment in segments:
            current = f"{current}{os.sep}{segment}"
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return False  # nothing below a missing component can be a link
            if S_ISLNK(mode):
                return True
        return False

    async def put(
        self, key: str, data: bytes | AsyncIterable[bytes], *, content_type: str | None = None
    ) -> BlobInfo:
        validate_blob_key(key)
        _check_content_type(content_type)
        if isinstance(data, bytes | bytearray | memoryview):
            # one worker-thread hop for the whole write: ingest puts many small files, and
            # each hop (a thread wake-up and a GIL hand-over) costs more than the write
            size = await self._run("store", key, self._put_bytes, key, data, content_type)
            log.debug("blob.put", key=key, size_bytes=size)
            return BlobInfo(key=key, size_bytes=size, content_type=content_type)
        path, handle, temp = await self._run("store", key, self._open_temp, key)
        try:
            async for chunk in data:
                if chunk:
                    await self._run("store", key, handle.write, chunk)
        except BaseException:
            handle.close()
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        size = await self._run("store", key, self._commit, handle, temp, path, key, content_type)
        log.debug("blob.put", key=key, size_bytes=size)
        return BlobInfo(key=key, size_bytes=size, content_type=content_type)

    async def put_many(self, writes: Sequence[BlobWrite]) -> list[BlobInfo]:
        """The whole batch in one worker-thread hop, one fsync per distinct directory.

        Each object is written as :meth:`put` writes it (temp file, fsync, rename), but
        the directories are fsynced once each after the last rename, before this returns,
        so the renames are durable before the caller commits what refers to them. The
        batch stops at the first failure. A cancelled caller still waits for the thread,
        which cannot be stopped, so that its clean-up does not race a late write.
        """
        for write in writes:
            validate_blob_key(write.key)
            _check_content_type(write.content_type)
        if not writes:
            return []
        job = asyncio.ensure_future(
            self._run("store", writes[0].key, self._put_batch, list(writes))
        )
        try:
            sizes = await asyncio.shield(job)
        except asyncio.CancelledError:
            await asyncio.wait({job})
            if not job.cancelled():
                job.exception()  # retrieved: the cancellation is what the caller sees
            raise
        log.debug("blob.put_many", objects=len(writes), size_bytes=sum(sizes))
        return [
            BlobInfo(key=write.key, size_bytes=size, content_type=write.content_type)
            for write, size in zip(writes, sizes, strict=True)
        ]

    async def get(self, key: str) -> bytes:
        validate_blob_key(key)
        return await self._run("read", key, self._read_all, key)

    async def stream(self, key: str, *, chunk_size: int = 1 << 20) -> AsyncIterator[bytes]:
        if chunk_size < 1:
            raise InvalidInput(f"chunk_size must be at least 1 byte, got {chunk_size}")
        validate_blob_key(key)
        handle = await self._run("read", key, self._open_for_read, key)
        try:
            while chunk := await self._run("read", key, handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def head(self, key: str) -> BlobInfo | None:
        validate_blob_key(key)
        return await self._run("inspect", key, self._head, key)

    async def exists(self, key: str) -> bool:
        return await self.head(key) is not None

    async def delete(self, key: str) -> None:
        validate_blob_key(key)
        await self._run("delete", key, self._delete, key)

    async def list_prefix(self, prefix: str) -> AsyncIterator[BlobEntry]:
        """The files under the prefix's directory, walked in one worker-thread hop.

        Hidden names (temp files of puts in progress, content-type sidecars) are never
        keys and are skipped, as are symlinks and anything else that is not a regular file.
        ``modified_at`` is the file's mtime: when its last bytes were written.
        """
        prefix = validate_blob_prefix(prefix)
        entries = await self._run("list", prefix or "/", self._list, prefix)
        for entry in entries:
            yield entry

    async def presign_put(
        self, key: str, *, expires_in_s: int, content_type: str | None = None
    ) -> str:
        if self._signer is None:
            validate_blob_key(key)
            raise presigning_not_configured("filesystem")
        return self._signer.url("PUT", key, expires_in_s=expires_in_s)

    async def presign_get(self, key: str, *, expires_in_s: int) -> str:
        if self._signer is None:
            validate_blob_key(key)
            raise presigning_not_configured("filesystem")
        return self._signer.url("GET", key, expires_in_s=expires_in_s)

    def verify_presigned(
        self, method: str, key: str, expires: int, signature: str, *, now: float | None = None
    ) -> bool:
        """True when a URL from :meth:`presign_put` / :meth:`presign_get` for ``method`` and
        ``key`` carried ``expires`` and ``signature`` and has not expired (constant-time
        comparison). Always False when presigning is not configured."""
        if self._signer is None:
            return False
        return self._signer.verify(method, key, expires, signature, now=now)

    async def ping(self) -> None:
        await asyncio.to_thread(self._ping)

    async def _run(self, action: str, key: str, function: Callable[..., _T], *args: object) -> _T:
        """Run blocking file I/O in a worker thread; an unexpected ``OSError`` (disk full,
        permissions) becomes ``Unavailable``."""
        try:
            return await asyncio.to_thread(function, *args)
        except OSError as err:
            raise self._unavailable(action, key, err) from err

    def _unavailable(self, action: str, key: str, err: OSError) -> Unavailable:
        reason = err.strerror or type(err).__name__
        return Unavailable(
            f"blob store directory {str(self._root)!r} could not {action} blob {key!r}: {reason}"
        )

    # -- blocking helpers, run in worker threads ------------------------------------------

    def _open_temp(self, key: str) -> tuple[Path, BinaryIO, Path]:
        path = self.path_for(key)
        self._make_parents(key, path.parent)
        try:
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        except NotADirectoryError as err:
            raise _prefix_conflict(key) from err
        return path, os.fdopen(fd, "wb"), Path(name)

    def _put_bytes(
        self, key: str, data: bytes | bytearray | memoryview, content_type: str | None
    ) -> int:
        """The whole put of an object in memory (blocking)."""
        size, _ = self._write_object(key, data, content_type, sync_directory=True)
        return size

    def _put_batch(self, writes: list[BlobWrite]) -> list[int]:
        """Write each object, then fsync each directory the renames touched, once
        (blocking); an ``OSError`` names the key it happened on."""
        sizes: list[int] = []
        directories: dict[Path, str] = {}  # directory -> first key in it, for errors
        for write in writes:
            try:
                size, directory = self._write_object(
                    write.key, write.data, write.content_type, sync_directory=False
                )
            except OSError as err:
                raise self._unavailable("store", write.key, err) from err
            sizes.append(size)
            directories.setdefault(directory, write.key)
        for directory, key in directories.items():
            try:
                _fsync_directory(directory)
            except OSError as err:
                raise self._unavailable("store", key, err) from err
        return sizes

    def _write_object(
        self,
        key: str,
        data: bytes | bytearray | memoryview,
        content_type: str | None,
        *,
        sync_directory: bool,
    ) -> tuple[int, Path]:
        """Write, fsync and rename one object (blocking): its size and its directory."""
        path, handle, temp = self._open_temp(key)
        try:
            handle.write(data)
        except BaseException:
            handle.close()
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        size = self._commit(handle, temp, path, key, content_type, sync_directory=sync_directory)
        return size, path.parent

    def _commit(
        self,
        handle: BinaryIO,
        temp: Path,
        path: Path,
        key: str,
        content_type: str | None,
        *,
        sync_directory: bool = True,
    ) -> int:
        """Make a written temp file the object ``key``, durably (blocking).

        The content type goes into an extended attribute of the temp file, so that one
        fsync of the file and one of the directory (for the rename) make the object and its
        type durable together; on a filesystem without user attributes it goes into the
        sidecar file instead. A stale sidecar of the object this replaces is removed.
        ``sync_directory=False`` leaves the directory fsync to a caller that writes several
        objects into it and fsyncs it once after the last.
        """
        try:
            with handle:
                tagged = self._xattrs and _tag_content_type(handle.fileno(), content_type)
                handle.flush()
                os.fsync(handle.fileno())
                size = os.fstat(handle.fileno()).st_size
            _rename(temp, path, key)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        if tagged:
            with contextlib.suppress(FileNotFoundError):
                _sidecar(path).unlink()
        else:
            self._write_content_type(path, content_type)
        if sync_directory:
            _fsync_directory(path.parent)
        return size

    def _read_all(self, key: str) -> bytes:
        with self._open_for_read(key) as handle:
            return handle.read()

    def _open_for_read(self, key: str) -> BinaryIO:
        try:
            return self.path_for(key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as err:
            raise BlobNotFound(key) from err

    def _delete(self, key: str) -> None:
        path = self.path_for(key)
        if path.is_dir():
            return
        removed = False
        for target in (path, _sidecar(path)):
            try:
                target.unlink()
                removed = True
            except (FileNotFoundError, NotADirectoryError):
                continue
        if removed:
            _fsync_directory(path.parent)

    def _make_parents(self, key: str, directory: Path) -> None:
        """``mkdir -p directory``, fsyncing each new directory's parent; a file in the way
        inside the root means the key lies under an existing blob."""
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            if current.exists():
                if current.is_dir():
                    break  # another writer created it between the two checks
                if current != self._root and current.is_relative_to(self._root):
                    raise _prefix_conflict(key)
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(current))
            missing.append(current)
            current = current.parent
        for created in reversed(missing):
            try:
                created.mkdir()
            except FileExistsError:
                if created.is_dir():
                    continue
                raise _prefix_conflict(key) from None
            except NotADirectoryError as err:
                raise _prefix_conflict(key) from err
            _fsync_directory(created.parent)

    def _write_content_type(self, path: Path, content_type: str | None) -> None:
        """The sidecar (fsynced; the caller fsyncs the directory)."""
        sidecar = _sidecar(path)
        if content_type is None:
            with contextlib.suppress(FileNotFoundError):
                sidecar.unlink()
            return
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{sidecar.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content_type.encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(name, sidecar)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise

    def _list(self, prefix: str) -> list[BlobEntry]:
        top = self.path_for(prefix) if prefix else self._root
        found: list[BlobEntry] = []
        # a prefix that names a file, or nothing, has nothing under it: os.walk yields
        # nothing for a top that is not a directory, and never follows symlinked ones
        for directory, subdirectories, files in os.walk(top):
            subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
            relative = Path(directory).relative_to(top).parts
            for name in files:
                key = "/".join((*([prefix] if prefix else []), *relative, name))
                try:
                    validate_blob_key(key)  # hidden temp and sidecar files are not keys
                    status = os.lstat(os.path.join(directory, name))
                except (InvalidInput, FileNotFoundError):
                    continue  # not a key (or deleted since the directory was read)
                if S_ISREG(status.st_mode):
                    found.append(
                        BlobEntry(
                            key=key,
                            size_bytes=status.st_size,
                            modified_at=datetime.fromtimestamp(status.st_mtime, UTC),
                        )
                    )
        return found

    def _head(self, key: str) -> BlobInfo | None:
        path = self.path_for(key)
        try:
            status = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not S_ISREG(status.st_mode):
            return None
        return BlobInfo(
            key=key, size_bytes=status.st_size, content_type=_content_type_of(path, self._xattrs)
        )

    def _ping(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._root, prefix=".ping.", suffix=".tmp")
            try:
                os.write(fd, b"ping")
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(name)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise Unavailable(
                f"blob store directory {str(self._root)!r} is not writable: {reason}"
            ) from err


def _tag_content_type(fd: int, content_type: str | None) -> bool:
    """Put ``content_type`` in the open file's extended attribute; False where the platform
    or filesystem has no user attributes (the caller writes the sidecar then)."""
    if content_type is None:
        return True
    try:
        os.setxattr(fd, _CONTENT_TYPE_ATTRIBUTE, content_type.encode())
    except OSError as err:
        if err.errno in _NO_XATTR_ERRNOS:
            return False
        raise
    return True


def _content_type_of(path: Path, xattrs: bool) -> str | None:
    """The extended attribute, else the sidecar (objects written by earlier versions, or on
    filesystems without user attributes), else None."""
    if xattrs:
        try:
            return os.getxattr(path, _CONTENT_TYPE_ATTRIBUTE).decode()
        except OSError:
            pass
    try:
        return _sidecar(path).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _rename(temp: Path, path: Path, key: str) -> None:
    try:
        os.replace(temp, path)
    except IsADirectoryError as err:
        raise Conflict(
            f"blob key {key!r} names a prefix of other blobs on the filesystem store"
        ) from err


def _sidecar(path: Path) -> Path:
    return path.with_name(f".{path.name}{_CONTENT_TYPE_SUFFIX}")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_content_type(content_type: str | None) -> None:
    if content_type is None:
        return
    if (
        not content_type
        or len(content_type) > _MAX_CONTENT_TYPE_LENGTH
        or not content_type.isascii()
        or not content_type.isprintable()
    ):
        raise InvalidInput(
            f"content_type {content_type[:80]!r} must be 1..{_MAX_CONTENT_TYPE_LENGTH} "
            "printable ASCII characters"
        )


def _prefix_conflict(key: str) -> Conflict:
    return Conflict(
        f"blob key {key!r} lies under an existing blob; the filesystem store cannot keep "
        "an object and a prefix of the same name"
    )
