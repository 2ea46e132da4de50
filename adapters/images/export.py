"""The image codec the export use case works with: the ingest readers and Pillow."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from adapters.images.formats import read_image
from adapters.images.rendering import RenderFormat, encode_picture
from domain.errors import InvalidInput
from domain.imaging.frames import Frames
from domain.ports.exporting import ExportFormat
from domain.studies import Modality


class PillowImageCodec:
    """:class:`~domain.ports.exporting.ImageCodec` on pydicom, nibabel and Pillow."""

    def decode(self, data: bytes, *, modality: Modality | None) -> Frames:
        return read_image(data, modality=modality, require_pixel_data=True).frames()

    def encode(self, picture: npt.NDArray[np.uint8], *, format: ExportFormat) -> bytes:
        if format is ExportFormat.NPY:
            raise InvalidInput("npy is not a picture format; the frames are saved as arrays")
        return encode_picture(picture, format=RenderFormat(format.value))
