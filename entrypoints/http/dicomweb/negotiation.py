"""What each DICOMweb resource can produce, chosen from the client's Accept header."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.images import RenderFormat
from entrypoints.http.dicomweb.media import (
    DICOM,
    DICOM_JSON,
    EXPLICIT_VR_LITTLE_ENDIAN,
    FRAME_MEDIA_TYPES,
    MULTIPART,
    OCTET_STREAM,
    MediaRange,
    not_acceptable,
    parse_accept,
)

AS_STORED = "*"


def json_accepted(header: str | None, what: str) -> None:
    """QIDO-RS answers and metadata: DICOM JSON (``application/json`` and wildcards too)."""
    for media in parse_accept(header):
        if media.type in (DICOM_JSON, "application/json") or media.covers(DICOM_JSON):
            return
        if media.type == MULTIPART and media.part_type in (DICOM_JSON, "application/json"):
            return
    raise not_acceptable(what, header)


def dicom_transfer_syntax(header: str | None) -> str:
    """The transfer syntax instances must be sent in: :data:`AS_STORED` or a UID.

    ``multipart/related; type="application/dicom"`` without ``transfer-syntax`` means
    Explicit VR Little Endian (PS3.18 8.7.3.5.2); ``*/*`` leaves the choice to us.
    """
    for media in parse_accept(header):
        if media.type == MULTIPART and (media.part_type or DICOM) == DICOM:
            return media.transfer_syntax or EXPLICIT_VR_LITTLE_ENDIAN
        if media.type == DICOM:
            return media.transfer_syntax or EXPLICIT_VR_LITTLE_ENDIAN
        if media.type in ("*/*", "multipart/*") or (
            media.type == MULTIPART and media.part_type in ("*/*", "application/*")
        ):
            return AS_STORED
    raise not_acceptable("DICOM instances", header)


@dataclass(frozen=True)
class FrameChoice:
    media_type: str
    """The parts' media type (``application/octet-stream``, ``image/jp2``...)."""
    as_stored: bool
    """Hand out the stored (compressed) frames, else native uncompressed ones."""


def _range_of(media: MediaRange) -> tuple[str, str | None] | None:
    """The part media range and transfer syntax an Accept entry asks for frames in."""
    if media.type == MULTIPART:
        return (media.part_type or OCTET_STREAM), media.transfer_syntax
    if media.type in ("*/*", OCTET_STREAM) or media.type.startswith("image/"):
        return media.type, media.transfer_syntax
    return None


def frame_choice(header: str | None, stored_syntax: str | None) -> FrameChoice:
    """How to send frames of an instance stored in ``stored_syntax``."""
    compressed = FRAME_MEDIA_TYPES.get(stored_syntax or "")
    for media in parse_accept(header):
        wanted = _range_of(media)
        if wanted is None:
            continue
        part, syntax = wanted
        if part == OCTET_STREAM and syntax in (None, AS_STORED, EXPLICIT_VR_LITTLE_ENDIAN):
            return FrameChoice(OCTET_STREAM, as_stored=False)
        if part in ("*/*", "application/*") and syntax in (None, AS_STORED):
            if compressed is not None and part == "*/*":
                return FrameChoice(compressed, as_stored=True)
            return FrameChoice(OCTET_STREAM, as_stored=False)
        accepts_stored = syntax in (None, AS_STORED, stored_syntax)
        if compressed is not None and MediaRange(part).covers(compressed) and accepts_stored:
            return FrameChoice(compressed, as_stored=True)
    raise not_acceptable("these frames", header)


def rendered_format(header: str | None) -> RenderFormat:
    """``image/jpeg`` (the PS3.18 default) or ``image/png``."""
    for media in parse_accept(header):
        for format in (RenderFormat.JPEG, RenderFormat.PNG):
            if media.covers(format.content_type):
                return format
    raise not_acceptable("a rendered image", header)
