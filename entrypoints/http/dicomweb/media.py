"""Media types of DICOMweb: ``Accept`` negotiation and multipart/related bodies (RFC 2387).

Accept values of DICOMweb clients look like
``multipart/related; type="application/dicom"; transfer-syntax=*, application/dicom+json;q=0.9``.
Each resource lists what it can produce; :func:`negotiate` picks the first the client accepts
(by ``q``, then order) or raises 406.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from litestar.exceptions import HTTPException

from domain.errors import InvalidInput

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET_STREAM = "application/octet-stream"
MULTIPART = "multipart/related"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"

# Compressed transfer syntaxes and the media type of one of their frames (PS3.18 Table 8.7.3-5)
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}

_PARAMETER = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)')


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header (or a Content-Type)."""

    type: str
    parameters: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def part_type(self) -> str | None:
        """The ``type`` parameter of a multipart/related range (``None`` when absent)."""
        found = self.parameters.get("type")
        return found.lower() if found else None

    @property
    def transfer_syntax(self) -> str | None:
        return self.parameters.get("transfer-syntax")

    def covers(self, media_type: str) -> bool:
        """Whether this range (``*/*``, ``image/*``, ``image/png``) admits ``media_type``."""
        wanted, _, sub = self.type.partition("/")
        kind, _, kind_sub = media_type.lower().partition("/")
        return wanted == "*" or (wanted == kind and sub in ("*", kind_sub))


def parse_media_type(text: str) -> MediaRange:
    """``type/subtype; name=value; ...`` (quoted values unquoted, names lower case)."""
    head, _, rest = text.partition(";")
    parameters = {name.lower(): value.strip('"') for name, value in _PARAMETER.findall(";" + rest)}
    return MediaRange(type=head.strip().lower(), parameters=parameters)


def _split(header: str) -> list[str]:
    """Split an Accept header on the commas between entries (not inside quotes)."""
    entries, current, quoted = [], [], False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            entries.append("".join(current))
            current = []
        else:
            current.append(char)
    entries.append("".join(current))
    return [e.strip() for e in entries if e.strip()]


def parse_accept(header: str | None) -> list[MediaRange]:
    """The entries of an Accept header, best first (``q`` descending, then as given); an
    absent or empty header accepts anything."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges = []
    for entry in _split(header):
        parsed = parse_media_type(entry)
        try:
            q = float(parsed.parameters.pop("q", "1"))
        except ValueError:
            q = 1.0
        if q > 0:
            ranges.append(MediaRange(parsed.type, parsed.parameters, q))
    return sorted(ranges, key=lambda r: -r.q)


def not_acceptable(what: str, header: str | None) -> HTTPException:
    shown = (header or "")[:200]
    return HTTPException(status_code=406, detail=f"cannot answer {what} as '{shown}'")


# -- multipart/related -------------------------------------------------------------------


def new_boundary() -> str:
    return f"hounsfield-{uuid.uuid4().hex}"


def multipart_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    """The Content-Type of a multipart/related answer whose parts are ``part_type``."""
    extra = f"; transfer-syntax={transfer_syntax}" if transfer_syntax else ""
    return f'{MULTIPART}; type="{part_type}"; boundary={boundary}{extra}'


def part_header(
    boundary: str, content_type: str, length: int, location: str | None = None
) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {content_type}", f"Content-Length: {length}"]
    if location:
        lines.append(f"Content-Location: {location}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("ascii")


async def multipart_stream(
    boundary: str, parts: AsyncIterator[tuple[str, bytes, str | None]]
) -> AsyncIterator[bytes]:
    """Encode ``(content type, body, location)`` parts as they come."""
    async for content_type, body, location in parts:
        yield part_header(boundary, content_type, len(body), location)
        yield body
        yield b"\r\n"
    yield closing(boundary)


def multipart_body(boundary: str, parts: Iterable[tuple[str, bytes]]) -> bytes:
    chunks = []
    for content_type, body in parts:
        chunks += [part_header(boundary, content_type, len(body)), body, b"\r\n"]
    chunks.append(closing(boundary))
    return b"".join(chunks)


@dataclass(frozen=True)
class Part:
    content_type: MediaRange
    body: bytes


def parse_multipart(body: bytes, boundary: str) -> list[Part]:
    """The parts of a multipart body (preamble and epilogue ignored).

    Raises:
        InvalidInput: the body has no delimiter or a part lacks its header block.
    """
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(b"\r\n" + delimiter)
    if len(chunks) < 2:
        raise InvalidInput(f"the multipart body has no part delimited by '--{boundary}'")
    parts = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter: the rest is the epilogue
        head, separator, content = chunk.partition(b"\r\n\r\n")
        if not separator:
            raise InvalidInput("a part of the multipart body has no header block")
        content_type = DICOM
        for line in head.split(b"\r\n"):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-type":
                content_type = value.strip()
        parts.append(Part(content_type=parse_media_type(content_type), body=content))
    return parts
