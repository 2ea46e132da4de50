"""Reading uploaded files and rendering stored ones, off the event loop.

Readers (``adapters.images.read_image``) parse and decode; a file they refuse becomes a
:class:`~domain.services.ingest.RejectedFile` that names it. Decoded pixels are dropped as
soon as the fields are known, so a large upload holds only its bytes in memory.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence

import structlog
from litestar.datastructures import UploadFile
from pydicom.uid import UID

from adapters.dicom import is_dicom_part10, read_dicom
from adapters.images import RenderFormat, read_image, render
from domain.errors import InvalidInput
from domain.imaging import ImageFields, window_preset
from domain.services.uploads import RejectedFile, UploadedFile
from domain.studies import Instance, Modality, Window

log = structlog.get_logger(__name__)

MAX_FILE_NAME_LENGTH = 255
PARALLEL_READS = max(2, min(8, os.cpu_count() or 2))
"""Files of one upload parsed at the same time (pydicom holds the GIL for much of it)."""
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


def _prepared(prepare: Callable[[bytes], bytes], data: bytes, file_name: str) -> bytes:
    try:
        return prepare(data)
    except InvalidInput as err:
        raise RejectedFile(file_name, err.detail) from None


async def read_upload(
    data: bytes,
    file_name: str,
    modality: Modality | None,
    prepare: Callable[[bytes], bytes] | None = None,
) -> UploadedFile:
    """``prepare`` changes the bytes before they are read (de-identification at ingest)."""
    if prepare is not None:
        data = await asyncio.to_thread(_prepared, prepare, data, file_name)
    fields = await asyncio.to_thread(read_fields, data, file_name, modality)
    return UploadedFile(file_name=file_name, data=data, fields=fields)


async def read_uploads(
    uploads: Sequence[UploadFile],
    modality: Modality | None,
    prepare: Callable[[bytes], bytes] | None = None,
) -> list[UploadedFile]:
    """Read every uploaded file, a few at a time; the first refused one (in the order they
    came) refuses the upload."""
    gate = asyncio.Semaphore(PARALLEL_READS)

    async def read(position: int, upload: UploadFile) -> UploadedFile:
        async with gate:
            name = display_name(upload.filename, position)
            return await read_upload(await upload.read(), name, modality, prepare)

    outcomes = await asyncio.gather(
        *(read(n, upload) for n, upload in enumerate(uploads, start=1)), return_exceptions=True
    )
    read_files: list[UploadedFile] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
        read_files.append(outcome)
    return read_files


async def close_uploads(uploads: Sequence[UploadFile]) -> None:
    for upload in uploads:
        await upload.close()


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
