"""NIfTI (nibabel), PNG and JPEG (Pillow) readers, format detection and rendering."""

from adapters.images.converted import ConvertedImage
from adapters.images.formats import detect_format, read_image
from adapters.images.nifti import read_nifti
from adapters.images.raster import read_raster
from adapters.images.rendering import RenderFormat, encode_picture, render

__all__ = [
    "ConvertedImage",
    "RenderFormat",
    "detect_format",
    "encode_picture",
    "read_image",
    "read_nifti",
    "read_raster",
    "render",
]
