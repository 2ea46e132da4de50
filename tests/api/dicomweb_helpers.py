"""Helpers for the DICOMweb tests: multipart bodies, DICOM JSON reading, a served app."""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from litestar import Litestar
from pydicom import dcmread

BOUNDARY = "test-boundary-7d1e"


def stow_body(
    files: list[bytes], part_type: str = "application/dicom", boundary: str = BOUNDARY
) -> bytes:
    chunks = []
    for data in files:
        chunks.append(f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode())
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


def stow_headers(headers: dict[str, str], boundary: str = BOUNDARY) -> dict[str, str]:
    return {
        **headers,
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }


def values(dataset: dict[str, Any], tag: str) -> list[Any]:
    element = dataset.get(tag) or {}
    found: list[Any] = element.get("Value", [])
    return found


def first(dataset: dict[str, Any], tag: str) -> Any:
    found = values(dataset, tag)
    return found[0] if found else None


def parts(content_type: str, body: bytes) -> list[tuple[str, bytes]]:
    """(part Content-Type, body) of a multipart/related answer."""
    boundary = next(
        p.split("=", 1)[1].strip('"')
        for p in (x.strip() for x in content_type.split(";"))
        if p.lower().startswith("boundary=")
    )
    found = []
    for chunk in (b"\r\n" + body).split(b"\r\n--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, content = chunk.partition(b"\r\n\r\n")
        kind = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-type:")
        )
        found.append((kind, content))
    return found


def pixel_frame(data: bytes, number: int) -> bytes:
    """Frame ``number`` (1-based) of an uncompressed file's pixel data, as stored."""
    ds = dcmread(io.BytesIO(data))
    length = ds.Rows * ds.Columns * ds.get("SamplesPerPixel", 1) * ds.BitsAllocated // 8
    return bytes(ds.PixelData[(number - 1) * length : number * length])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def running(app: Litestar) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on this event loop; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
