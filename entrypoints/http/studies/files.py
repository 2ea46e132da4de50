"""Reading uploaded files and rendering stored ones, off the event loop.

Readers (``adapters.images.read_image``) parse and decode; a file they refuse becomes a
:class:`~domain.services.ingest.RejectedFile` that names it. Decoded pixels are dropped as
soon as the fields are known, so a large upload holds only its bytes in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import structlog
from pydicom.uid import UID

from adapters.dicom import is_dicom_part10, read_dicom
from adapters.images import RenderFormat, read_image, render
from domain.errors import InvalidInput
from domain.imaging import ImageFields, window_preset
from domain.services.uploads import RejectedFile, UploadedFile
from domain.studies import Instance, Modality, Window
from entrypoints.http.forms import FormFile

log = structlog.get_logger(__name__)

MAX_FILE_NAME_LENGTH = 255
_DICOM_MODALITY_TAG = "00080060"


def read_fields(data: bytes, file_name: str, modality: Modality | None) -> ImageFields:
    """What ingest keeps from one file (blocking: run it in a worker thread).

    Raises:
        RejectedFile: the file is not a readable, supported image with pixel data.
    """
    try:
        if is_dicom_part10(data):
            # native pixel data is checked for length and layout without decoding it;
            # compressed pixel data is only proven readable by decoding it
            image = read_dicom(data, require_pixel_data=True, decode=False, shared_elements=True)
            if _compressed(image.fields.instance.transfer_syntax_uid):
                image.frames()
            return image.fields
        return read_image(data, modality=modality, require_pixel_data=True).fields
    except InvalidInput as err:
        raise RejectedFile(file_name, err.detail) from None
    except MemoryError:
        raise
    except Exception as err:  # a reader bug must not become a 500 for a user's file
        log.warning("reader failed", error=type(err).__name__, exc_info=err)
        raise RejectedFile(file_name, f"the file cannot be read ({type(err).__name__})") from None


def _compressed(transfer_syntax_uid: str | None) -> bool:
    return transfer_syntax_uid is None or UID(transfer_syntax_uid).is_encapsulated


def display_name(file_name: str | None, position: int) -> str:
    name = (file_name or "").strip()
    return name[:MAX_FILE_NAME_LENGTH] if name else f"file #{position}"


def _read_one(
    data: bytes,
    file_name: str,
    modality: Modality | None,
    prepare: Callable[[bytes], bytes] | None,
) -> UploadedFile:
    """``prepare`` changes the bytes before they are read (de-identification at ingest)."""
    if prepare is not None:
        try:
            data = prepare(data)
        except InvalidInput as err:
            raise RejectedFile(file_name, err.detail) from None
    return UploadedFile(
        file_name=file_name, data=data, fields=read_fields(data, file_name, modality)
    )


async def read_upload(
    data: bytes,
    file_name: str,
    modality: Modality | None,
    prepare: Callable[[bytes], bytes] | None = None,
) -> UploadedFile:
    """One file, read in a worker thread."""
    return await asyncio.to_thread(_read_one, data, file_name, modality, prepare)


async def read_uploads(
    uploads: Sequence[FormFile],
    modality: Modality | None,
    prepare: Callable[[bytes], bytes] | None = None,
) -> list[UploadedFile]:
    """Every uploaded file, read one after another in one worker thread; the first refused
    one (in the order they came) refuses the upload.

    One thread for the whole request, not one per file: parsing holds the GIL, so threads
    per file bought no parallelism, only a thread hand-over (and GIL contention with the
    event loop) per file: a fifth of the server's user CPU per ingested file (3.1 to
    2.4 ms, 16 files a request, docs/benchmarks.md).
    """
    named = [
        (display_name(upload.file_name, n), upload.data)
        for n, upload in enumerate(uploads, start=1)
    ]

    def read_all() -> list[UploadedFile]:
        return [_read_one(data, name, modality, prepare) for name, data in named]

    return await asyncio.to_thread(read_all)


def requested_window(
    window: float | None, level: float | None, preset: str | None
) -> Window | None:
    """The window a render request asks for: ``window``/``level`` (width/centre) together,
    or a preset name, or neither (the image's default)."""
    if preset is not None:
        if window is not None or level is not None:
            raise InvalidInput("give either a preset or window and level, not both")
        return window_preset(preset)
    if window is None and level is None:
        return None
    if window is None or level is None:
        raise InvalidInput("window (width) and level (centre) must be given together")
    try:
        return Window(center=level, width=window)
    except ValueError as err:
        raise InvalidInput(str(err)) from None


def _header_modality(instance: Instance) -> Modality | None:
    element = instance.header.get(_DICOM_MODALITY_TAG)
    values = element.get("Value") if isinstance(element, dict) else None
    if isinstance(values, list) and values and isinstance(values[0], str):
        try:
            return Modality.parse(values[0])
        except ValueError:
            return None
    return None


def render_instance(
    data: bytes, instance: Instance, *, frame: int, window: Window | None, format: RenderFormat
) -> bytes:
    """Frame ``frame`` (1-based) of a stored file as PNG or JPEG (blocking)."""
    image = read_image(data, modality=_header_modality(instance), require_pixel_data=True)
    frames = image.frames()
    if not 1 <= frame <= frames.number_of_frames:
        raise InvalidInput(
            f"frame {frame} does not exist; this image has frames 1 to {frames.number_of_frames}"
        )
    return render(frames, frame=frame - 1, window=window, format=format)
