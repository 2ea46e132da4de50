"""Port for exporting images: decoding a stored file into frames, encoding a picture."""

from __future__ import annotations

import enum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from domain.imaging.frames import Frames
from domain.studies import Modality


class ExportFormat(enum.StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    NPY = "npy"
    """The frames in modality units (HU for CT) as float32 ``(frames, rows, columns)``, or
    uint8 ``(frames, rows, columns, 3)`` for color, in NumPy's ``.npy`` format."""

    @property
    def extension(self) -> str:
        return {"png": "png", "jpeg": "jpg", "npy": "npy"}[self.value]


class ImageCodec(Protocol):
    def decode(self, data: bytes, *, modality: Modality | None) -> Frames:
        """Every frame of a stored file (DICOM, NIfTI, PNG, JPEG), blocking.

        Raises:
            InvalidInput: the file cannot be read or decoded.
        """
        ...

    def encode(self, picture: npt.NDArray[np.uint8], *, format: ExportFormat) -> bytes:
        """An 8-bit ``(rows, columns)`` gray or ``(rows, columns, 3)`` RGB picture as PNG or
        JPEG bytes."""
        ...
