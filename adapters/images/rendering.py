"""Rendering a frame to PNG or JPEG bytes with Pillow."""

from __future__ import annotations

import enum
import io

import numpy as np
import numpy.typing as npt
from PIL import Image

from domain.errors import InvalidInput
from domain.imaging import Frames
from domain.studies import Window


class RenderFormat(enum.StrEnum):
    PNG = "png"
    JPEG = "jpeg"

    @classmethod
    def parse(cls, text: str) -> RenderFormat:
        key = text.strip().lower()
        key = {"jpg": "jpeg", "image/png": "png", "image/jpeg": "jpeg"}.get(key, key)
        try:
            return cls(key)
        except ValueError:
            raise InvalidInput(f"unknown image format {text!r}; expected png or jpeg") from None

    @property
    def content_type(self) -> str:
        return f"image/{self.value}"


def encode_picture(
    picture: npt.NDArray[np.uint8],
    *,
    format: RenderFormat | str = RenderFormat.PNG,
    jpeg_quality: int = 90,
) -> bytes:
    """Encode an 8-bit picture: ``(rows, columns)`` gray or ``(rows, columns, 3)`` RGB."""
    chosen = format if isinstance(format, RenderFormat) else RenderFormat.parse(format)
    array = np.ascontiguousarray(picture, dtype=np.uint8)
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise InvalidInput(f"cannot encode a picture of shape {array.shape}")
    image = Image.fromarray(array)  # uint8: "L" for 2-D, "RGB" for 3 samples
    buffer = io.BytesIO()
    if chosen is RenderFormat.PNG:
        image.save(buffer, format="PNG", compress_level=6)
    else:
        image.save(buffer, format="JPEG", quality=jpeg_quality)
    return buffer.getvalue()


def render(
    frames: Frames,
    *,
    frame: int = 0,
    window: Window | None = None,
    format: RenderFormat | str = RenderFormat.PNG,
    jpeg_quality: int = 90,
) -> bytes:
    """Render frame ``frame`` (0-based) of ``frames`` to PNG or JPEG bytes.

    Grayscale is windowed (``window`` if given, else the header window, else the modality
    preset, else min/max; see :func:`domain.imaging.choose_window`) into 8-bit gray,
    MONOCHROME1 inverted; color passes through as 8-bit RGB.

    ``frames.display_window(frame, requested=window)`` tells which window that is.

    Raises:
        InvalidInput: the frame does not exist, the window width is not > 0, or the format is
            neither png nor jpeg.
    """
    chosen = format if isinstance(format, RenderFormat) else RenderFormat.parse(format)
    picture, _ = frames.display(frame, requested=window)
    return encode_picture(picture, format=chosen, jpeg_quality=jpeg_quality)
