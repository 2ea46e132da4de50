"""Assembling the instances of one series into a Volume, sorted by the domain's geometry."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from adapters.dicom import attributes
from adapters.dicom.pixels import frame_geometries, scalar_frames
from adapters.dicom.reading import DicomImage
from domain.errors import InvalidInput
from domain.imaging import SliceGeometry, Volume, stack_slices


def assemble_series(images: Sequence[DicomImage], *, resample_nonuniform: bool = False) -> Volume:
    """Stack the frames of ``images`` (one series, in any order) into a :class:`Volume`.

    Frames are ordered along the slice normal by :func:`domain.imaging.sort_slices` from their
    ``ImagePositionPatient``/``ImageOrientationPatient`` (per frame for enhanced multi-frame
    instances), never by file name or upload order. Color frames become BT.601 luma.

    Args:
        images: instances of one ``SeriesInstanceUID``.
        resample_nonuniform: interpolate gaps and uneven steps onto an even grid instead of
            refusing them.

    Returns:
        A volume in modality units (HU for CT) with ``(z, y, x)`` voxels and an affine that
        matches every slice's IPP and the PixelSpacing.

    Raises:
        InvalidInput: no images, several series, undecodable pixels, or slices that do not form
            one volume (the message lists the geometry problems).
    """
    if not images:
        raise InvalidInput("a volume needs at least one instance")
    series = {image.fields.series.series_instance_uid for image in images}
    if len(series) > 1:
        raise InvalidInput(f"the instances belong to {len(series)} series; a volume is one series")
    frames: list[npt.NDArray[np.float32]] = []
    geometries: list[SliceGeometry] = []
    ranks: list[int] = []
    for image in images:
        decoded = scalar_frames(image.frames())
        per_frame = frame_geometries(image.dataset, decoded.shape[0])
        number = image.fields.instance.instance_number or 0
        for index, (frame, geometry) in enumerate(zip(decoded, per_frame, strict=True)):
            frames.append(frame)
            geometries.append(geometry)
            ranks.append(number * 100_000 + index)
    if len(images) > 1 and not all(geometry.has_position for geometry in geometries):
        # without positions, order by InstanceNumber then frame: still never by file order
        geometries = [
            SliceGeometry(
                rows=geometry.rows,
                columns=geometry.columns,
                pixel_spacing=geometry.pixel_spacing,
                instance_number=rank,
            )
            for geometry, rank in zip(geometries, ranks, strict=True)
        ]
    first = images[0].dataset
    thickness = attributes.number(first, "SpacingBetweenSlices") or attributes.slice_thickness(
        first
    )
    return stack_slices(
        frames,
        geometries,
        resample_nonuniform=resample_nonuniform,
        single_slice_spacing_mm=thickness if thickness and thickness > 0 else None,
    )
