"""NIfTI-1 and NIfTI-2 (``.nii``, ``.nii.gz``) through nibabel, into LPS patient space.

NIfTI's affine maps voxel indices ``(i, j, k)`` (the first three array axes) to RAS+ mm; DICOM
and :class:`domain.imaging.Volume` use LPS, so the affine is flipped with
``diag(-1, -1, 1, 1)`` and the array is transposed from NIfTI's ``(i, j, k)`` to the volume's
``(z, y, x)`` = ``(k, j, i)`` order. The affine is nibabel's choice: the sform when its code is
set, else the qform, else the voxel sizes alone.
"""

from __future__ import annotations

import zlib

import nibabel as nib
import numpy as np

from adapters.images.converted import ConvertedImage, synthetic_fields
from domain.errors import InvalidInput
from domain.imaging import Frames, ImageFormat, Volume, flip_lps_ras
from domain.studies import Modality

GZIP_MAGIC = b"\x1f\x8b"
MAX_NIFTI_BYTES = 2 * 1024**3
"""Uncompressed size limit: a larger ``.nii.gz`` is refused while it is being inflated."""


def gunzip(data: bytes, *, max_bytes: int = MAX_NIFTI_BYTES) -> bytes:
    """Inflate gzip ``data``, refusing more than ``max_bytes`` of output (no gzip bombs)."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        inflated = inflater.decompress(data, max_bytes + 1)
    except zlib.error as err:
        raise InvalidInput(f"the gzip stream is corrupt: {err}") from err
    if len(inflated) > max_bytes or inflater.unconsumed_tail:
        raise InvalidInput(f"the file inflates to more than {max_bytes / 1024**2:.0f} MiB")
    if not inflater.eof:
        raise InvalidInput("the gzip stream is truncated")
    return inflated


def nifti_version(data: bytes) -> int | None:
    """1 or 2 when ``data`` starts with a single-file NIfTI header (``n+1``/``n+2``), else None."""
    if len(data) >= 348:
        for order in ("<", ">"):
            size = int(np.frombuffer(data[:4], dtype=f"{order}i4")[0])
            if size == 348 and data[344:347] == b"n+1":
                return 1
            if size == 540 and data[4:7] == b"n+2":
                return 2
    return None


def read_nifti(
    data: bytes, *, modality: Modality = Modality.OTHER, max_bytes: int = MAX_NIFTI_BYTES
) -> ConvertedImage:
    """Read a ``.nii`` or ``.nii.gz`` file into a volume that keeps its affine and voxel sizes.

    Args:
        data: the file's bytes, gzip-compressed or not.
        modality: what the caller says the image is (NIfTI does not say).
        max_bytes: the largest uncompressed size accepted.

    Returns:
        A :class:`ConvertedImage` whose volume has ``(z, y, x)`` = ``(k, j, i)`` voxels (scaled
        by ``scl_slope``/``scl_inter``) and the LPS affine; frames are its slices.

    Raises:
        InvalidInput: not NIfTI, a ``.hdr``/``.img`` pair header, more than three non-trivial
            dimensions, a non-scalar data type, or an affine that is not invertible.
    """
    raw = gunzip(data, max_bytes=max_bytes) if data[:2] == GZIP_MAGIC else data
    version = nifti_version(raw)
    if version is None:
        raise InvalidInput(
            "not a single-file NIfTI image: no 'n+1' or 'n+2' header (a .hdr/.img pair is not "
            "supported; convert it to .nii)"
        )
    image_class = nib.Nifti1Image if version == 1 else nib.Nifti2Image
    try:
        image = image_class.from_bytes(raw)
        shape = tuple(int(n) for n in image.shape)
        if len(shape) > 3 and any(n != 1 for n in shape[3:]):
            raise InvalidInput(
                f"NIfTI image has shape {shape}; only 2-D and 3-D images are supported "
                "(4-D series are not)"
            )
        data_array = np.asarray(image.get_fdata(dtype=np.float32))
        affine_ras = np.asarray(image.affine, dtype=np.float64)
    except InvalidInput:
        raise
    except MemoryError:
        raise
    except Exception as err:  # nibabel raises many types for corrupt or unsupported data
        raise InvalidInput(
            f"the NIfTI image cannot be read: {type(err).__name__}: {' '.join(str(err).split())}"
        ) from err
    while data_array.ndim < 3:
        data_array = data_array[..., np.newaxis]
    data_array = data_array.reshape(data_array.shape[:3])
    if not np.all(np.isfinite(data_array)):
        data_array = np.nan_to_num(data_array, nan=0.0, posinf=0.0, neginf=0.0)
    voxels = np.ascontiguousarray(data_array.transpose(2, 1, 0))
    try:
        volume = Volume.from_affine(voxels, flip_lps_ras(affine_ras))
    except ValueError as err:
        raise InvalidInput(f"the NIfTI affine is not usable: {err}") from err
    frames = Frames(
        pixels=volume.voxels, photometric_interpretation="MONOCHROME2", modality=modality
    )
    return ConvertedImage(
        format=ImageFormat.NIFTI,
        fields=synthetic_fields(
            format=ImageFormat.NIFTI, volume=volume, frames=frames, modality=modality
        ),
        volume=volume,
        decoded=frames,
    )
