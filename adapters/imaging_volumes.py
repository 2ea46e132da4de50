"""Reading the stored files of one series back into a :class:`~domain.imaging.Volume`.

DICOM instances are parsed with pydicom and stacked by :func:`adapters.dicom.assemble_series`
(slices sorted along the normal from their headers). A NIfTI, PNG or JPEG upload is one file
that is its own series at ingest; it is read with the same reader, so it gets the same
geometry ingest gave it (the NIfTI affine; 1 mm pixels at the origin for PNG/JPEG).
"""

from __future__ import annotations

from collections.abc import Sequence

from adapters.dicom import assemble_series, read_dicom
from adapters.images import read_nifti, read_raster
from domain.errors import InvalidInput
from domain.imaging import ImageFormat, Volume
from domain.ports.imaging import StoredFile


class StoredFileVolumeReader:
    """:class:`~domain.ports.imaging.VolumeReader` over files as they were received.

    Args:
        resample_nonuniform: interpolate DICOM series with gaps or uneven slice steps onto an
            even grid instead of refusing them. Off by default: a resampled volume no longer
            matches the source slices one to one, which a DICOM SEG of it needs.
    """

    def __init__(self, *, resample_nonuniform: bool = False) -> None:
        self._resample_nonuniform = resample_nonuniform

    def read_volume(self, files: Sequence[StoredFile]) -> Volume:
        if not files:
            raise InvalidInput("the series has no stored files to read")
        formats = {file.format for file in files}
        if len(formats) > 1:
            named = ", ".join(sorted(f.value for f in formats))
            raise InvalidInput(f"the series mixes file formats ({named}); a volume is one format")
        (kind,) = formats
        if kind is ImageFormat.DICOM:
            images = [read_dicom(file.data) for file in files]
            return assemble_series(images, resample_nonuniform=self._resample_nonuniform)
        if len(files) > 1:
            raise InvalidInput(
                f"a {kind.value.upper()} series is one file, this one has {len(files)}"
            )
        if kind is ImageFormat.NIFTI:
            return read_nifti(files[0].data).volume
        return read_raster(files[0].data).volume
