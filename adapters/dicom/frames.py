"""Pixel data frames and transfer syntax changes for WADO-RS, through pydicom.

Native (uncompressed) frames are cut out of the stored pixel data byte for byte; compressed
frames are either handed out as stored (one encapsulated frame each) or decoded to native
little-endian stored values. Whole files are re-encoded only when a client asks for Explicit
VR Little Endian and the file was stored otherwise.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels import pixel_array
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
)

from adapters.dicom import attributes
from adapters.dicom.pixels import transfer_syntax
from domain.errors import InvalidInput

EXPLICIT_VR_LITTLE_ENDIAN = str(ExplicitVRLittleEndian)


def _dataset(data: bytes) -> Dataset:
    try:
        return dcmread(io.BytesIO(data), force=True)
    except Exception as err:  # the stored file was read at ingest; this is a broken store
        raise InvalidInput(f"the stored file cannot be read: {type(err).__name__}") from err


def _frame_count(ds: Dataset) -> int:
    return (attributes.integer(ds, "NumberOfFrames") or 1) if "NumberOfFrames" in ds else 1


def _check_numbers(numbers: Sequence[int], count: int) -> None:
    wrong = [n for n in numbers if not 1 <= n <= count]
    if wrong:
        raise InvalidInput(
            f"frame {wrong[0]} does not exist; this instance has frames 1 to {count}"
        )


def _native_frame_length(ds: Dataset) -> int:
    rows, columns = attributes.integer(ds, "Rows") or 0, attributes.integer(ds, "Columns") or 0
    samples = attributes.integer(ds, "SamplesPerPixel") or 1
    bits = attributes.integer(ds, "BitsAllocated") or 8
    if bits % 8:
        raise InvalidInput(f"frames of {bits}-bit pixel data cannot be cut out; not supported")
    return rows * columns * samples * bits // 8


def frames(data: bytes, numbers: Sequence[int], *, as_stored: bool) -> tuple[list[bytes], str]:
    """Frames ``numbers`` (1-based) of a stored DICOM file.

    Args:
        data: the stored Part 10 file.
        numbers: which frames, in the order wanted.
        as_stored: hand compressed frames out compressed (as their encapsulated fragments
            hold them); otherwise decode them to native stored values.

    Returns:
        The frames and the transfer syntax UID they are in: Explicit VR Little Endian for
        native frames (little-endian stored values, BitsAllocated wide), else the file's own.

    Raises:
        InvalidInput: no pixel data, a frame number out of range, or pixel data that cannot
            be decoded here.
    """
    ds = _dataset(data)
    if "PixelData" not in ds:
        raise InvalidInput("the instance has no pixel data (7FE0,0010)")
    count = _frame_count(ds)
    _check_numbers(numbers, count)
    syntax = transfer_syntax(ds)
    if syntax.is_encapsulated:
        if as_stored:
            pixel_data = ds.PixelData
            return [get_frame(pixel_data, n - 1, number_of_frames=count) for n in numbers], str(
                syntax
            )
        return [_decoded(ds, n) for n in numbers], EXPLICIT_VR_LITTLE_ENDIAN
    if syntax == ExplicitVRBigEndian:
        return [_decoded(ds, n) for n in numbers], EXPLICIT_VR_LITTLE_ENDIAN
    length = _native_frame_length(ds)
    pixel_data = ds.PixelData
    return [
        bytes(pixel_data[(n - 1) * length : n * length]) for n in numbers
    ], EXPLICIT_VR_LITTLE_ENDIAN


def _decoded(ds: Dataset, number: int) -> bytes:
    try:
        array = pixel_array(ds, index=number - 1, raw=True)
    except Exception as err:
        raise InvalidInput(
            f"frame {number} cannot be decoded here ({transfer_syntax(ds).name}): "
            f"{' '.join(str(err).split())[:200]}"
        ) from err
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return np.ascontiguousarray(little).tobytes()


def stored_transfer_syntax(data: bytes) -> str:
    return str(transfer_syntax(_dataset(data)))


def to_explicit_little_endian(data: bytes) -> bytes:
    """The file re-encoded in Explicit VR Little Endian (pixel data decoded if compressed).

    Raises:
        InvalidInput: the pixel data cannot be decoded here.
    """
    ds = _dataset(data)
    syntax = transfer_syntax(ds)
    if syntax == ExplicitVRLittleEndian:
        return data
    try:
        if syntax.is_encapsulated:
            ds.decompress()
        elif "PixelData" in ds and syntax == ExplicitVRBigEndian:
            raise InvalidInput("big-endian files are not re-encoded; ask for transfer-syntax=*")
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        buffer = io.BytesIO()
        ds.save_as(buffer, implicit_vr=False, little_endian=True, enforce_file_format=True)
    except InvalidInput:
        raise
    except Exception as err:
        raise InvalidInput(
            f"the file cannot be re-encoded from {UID(syntax).name}: "
            f"{' '.join(str(err).split())[:200]}"
        ) from err
    return buffer.getvalue()
