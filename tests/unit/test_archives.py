"""ZIP answers: made in memory, or streamed file by file with a tail written last."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator

from entrypoints.archives import zip_bytes, zip_stream


async def two_files() -> AsyncIterator[tuple[str, bytes]]:
    yield "001/00001.dcm", b"first" * 1000
    yield "picture.png", b"\x89PNG not really"


async def test_a_streamed_zip_holds_every_file_then_the_tail() -> None:
    seen: list[str] = []

    def tail() -> list[tuple[str, bytes]]:
        seen.append("tail asked")
        return [("report.json", b"{}")]

    chunks = [chunk async for chunk in zip_stream(two_files(), tail=tail)]

    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["001/00001.dcm", "picture.png", "report.json"]
        assert archive.read("001/00001.dcm") == b"first" * 1000
        assert archive.getinfo("picture.png").compress_type == zipfile.ZIP_STORED
        assert archive.getinfo("001/00001.dcm").compress_type == zipfile.ZIP_DEFLATED
    assert seen == ["tail asked"]
    assert len(chunks) == 3  # one per file, then the tail and the central directory


def test_an_archive_in_memory_keeps_the_order_given() -> None:
    data = zip_bytes([("b.npy", b"1"), ("a.json", b"2")])

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.namelist() == ["b.npy", "a.json"]
