"""Recognising an uploaded file by its content and reading it with the right reader."""

from __future__ import annotations

from adapters.dicom.reading import DicomImage, is_dicom_part10, read_dicom
from adapters.images.converted import ConvertedImage
from adapters.images.nifti import GZIP_MAGIC, nifti_version, read_nifti
from adapters.images.raster import JPEG_MAGIC, PNG_MAGIC, read_raster
from domain.errors import InvalidInput
from domain.imaging import ImageFormat
from domain.studies import Modality

SUPPORTED = "DICOM, NIfTI (.nii, .nii.gz), PNG or JPEG"


def detect_format(data: bytes) -> ImageFormat | None:
    """The format ``data`` announces by its signature, or None (maybe a raw DICOM dataset).

    DICOM Part 10: ``DICM`` at byte 128; PNG and JPEG: their magic numbers; NIfTI: a ``n+1``
    or ``n+2`` header, or gzip (which must then inflate to NIfTI).
    """
    if is_dicom_part10(data):
        return ImageFormat.DICOM
    if data[:8] == PNG_MAGIC:
        return ImageFormat.PNG
    if data[:3] == JPEG_MAGIC:
        return ImageFormat.JPEG
    if data[:2] == GZIP_MAGIC or nifti_version(data) is not None:
        return ImageFormat.NIFTI
    return None


def read_image(
    data: bytes,
    *,
    modality: Modality | None = None,
    require_pixel_data: bool = True,
) -> DicomImage | ConvertedImage:
    """Read an uploaded file of any supported format, recognised by content (not by name).

    Args:
        data: the file's bytes.
        modality: the modality to give NIfTI/PNG/JPEG images (their files do not say);
            DICOM files keep their own ``Modality``.
        require_pixel_data: see :func:`adapters.dicom.read_dicom`.

    Returns:
        A :class:`DicomImage` or a :class:`ConvertedImage`; both have ``format``, ``fields``
        and ``frames()``.

    Raises:
        InvalidInput: the file is not one of the supported formats, or is a broken one; the
            detail says which and why.
    """
    kind = detect_format(data)
    given = modality or Modality.OTHER
    if kind is ImageFormat.DICOM:
        return read_dicom(data, require_pixel_data=require_pixel_data)
    if kind is ImageFormat.NIFTI:
        return read_nifti(data, modality=given)
    if kind in (ImageFormat.PNG, ImageFormat.JPEG):
        return read_raster(data, modality=given)
    try:
        return read_dicom(data, require_pixel_data=require_pixel_data)
    except InvalidInput as err:
        if err.detail.startswith(
            ("not a DICOM file", "not a readable DICOM file", "the file is empty")
        ):
            raise InvalidInput(f"not a supported image ({SUPPORTED}): {err.detail}") from err
        raise
