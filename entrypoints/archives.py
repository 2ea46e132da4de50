"""ZIP archives of named files, for the HTTP answers and the CLI."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Any

_STORED_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Already compressed: deflating them again costs time and saves nothing."""


def zip_bytes(files: Iterable[tuple[str, bytes]]) -> bytes:
    """A ZIP holding ``files`` (name, content) in the order given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, content in files:
            _add(zf, name, content)
    return buffer.getvalue()


class _Sink(io.RawIOBase):
    """A write-only, unseekable target: ``zipfile`` then writes data descriptors, so the
    archive can be sent while it is being made."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._chunks.append(chunk)
        return len(chunk)

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


async def zip_stream(
    files: AsyncIterable[tuple[str, bytes]],
    *,
    tail: Callable[[], Iterable[tuple[str, bytes]]] = lambda: (),
) -> AsyncIterator[bytes]:
    """A ZIP of ``files`` as it is made, one file at a time (compressed off the event loop),
    then of what ``tail()`` gives once ``files`` is exhausted (a report of the run)."""
    sink = _Sink()
    archive = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1)
    try:
        async for name, content in files:
            await asyncio.to_thread(_add, archive, name, content)
            yield sink.take()
        for name, content in tail():
            await asyncio.to_thread(_add, archive, name, content)
    finally:
        archive.close()
    yield sink.take()


def _add(archive: zipfile.ZipFile, name: str, content: bytes) -> None:
    stored = name.lower().endswith(_STORED_SUFFIXES)
    archive.writestr(
        name, content, compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    )
