"""PNG and JPEG pictures through Pillow, as one-slice volumes with a synthetic geometry."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

from adapters.images.converted import ConvertedImage, flat_volume, synthetic_fields
from domain.errors import InvalidInput
from domain.imaging import Frames, GeometryProblem, ImageFormat, ProblemCode, VoiLutFunction
from domain.studies import Modality, Window

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
MAX_PIXELS = 89_478_485
"""Pictures with more pixels are refused: Pillow's decompression-bomb threshold, made an error."""

_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_FORMATS = {"PNG": ImageFormat.PNG, "JPEG": ImageFormat.JPEG, "MPO": ImageFormat.JPEG}
_NO_GEOMETRY = GeometryProblem(
    code=ProblemCode.MISSING_GEOMETRY,
    detail="the picture has no patient geometry; 1 mm pixels, identity direction and origin 0 "
    "are assumed",
)


def _full_range_window(mode: str) -> Window | None:
    """The window that shows stored values as they are: 8-bit and 16-bit pictures."""
    if mode in {"1", "L", "LA", "La"}:
        return Window(center=127.5, width=255.0)
    if mode.startswith("I;16"):
        return Window(center=32767.5, width=65535.0)
    return None


def read_raster(data: bytes, *, modality: Modality = Modality.OTHER) -> ConvertedImage:
    """Read a PNG or JPEG picture.

    Grayscale pictures (1, 8 or 16 bits, or 32-bit integer/float) become float32 frames shown
    with the window that reproduces the stored values (min/max for 32-bit); color pictures
    (RGB, RGBA, palette, CMYK, YCbCr) become RGB frames, alpha dropped, and their volume holds
    BT.601 luma. JPEG EXIF orientation is applied.

    Raises:
        InvalidInput: not a PNG or JPEG, truncated or corrupt, or over :data:`MAX_PIXELS`.
    """
    try:
        picture = Image.open(io.BytesIO(data))
        if picture.format not in _FORMATS:
            raise InvalidInput(f"not a PNG or JPEG picture (Pillow reads it as {picture.format})")
        image_format = _FORMATS[str(picture.format)]
        if picture.width * picture.height > MAX_PIXELS:
            raise InvalidInput(
                f"the picture has {picture.width}x{picture.height} pixels, over the "
                f"{MAX_PIXELS} pixel limit"
            )
        picture.load()
        picture = ImageOps.exif_transpose(picture) or picture
    except InvalidInput:
        raise
    except Image.DecompressionBombError as err:
        raise InvalidInput(f"the picture is too large: {err}") from err
    except MemoryError:
        raise
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError... on bad data
        raise InvalidInput(f"not a readable PNG or JPEG picture: {err}") from err
    mode = picture.mode
    if mode in _GRAY_MODES:
        gray = picture.convert("L") if mode in {"1", "LA", "La"} else picture
        pixels = np.asarray(gray, dtype=np.float32)
        window = _full_range_window(mode)
        frames = Frames(
            pixels=pixels[np.newaxis],
            photometric_interpretation="MONOCHROME2",
            modality=modality,
            window=window,
            voi_lut_function=VoiLutFunction.LINEAR_EXACT,
        )
        volume = flat_volume(pixels, (_NO_GEOMETRY,))
    else:
        rgb = np.asarray(picture.convert("RGB"), dtype=np.uint8)
        frames = Frames(pixels=rgb[np.newaxis], photometric_interpretation="RGB", modality=modality)
        luma = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        volume = flat_volume(luma, (_NO_GEOMETRY,))
    return ConvertedImage(
        format=image_format,
        fields=synthetic_fields(
            format=image_format, volume=volume, frames=frames, modality=modality
        ),
        volume=volume,
        decoded=frames,
    )
