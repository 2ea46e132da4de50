"""Reading an RT Structure Set: closed planar contours rasterised onto the series' grid.

Contour points (``ContourData``, LPS mm) go through the volume's inverse affine to continuous
voxel indices; each contour must lie on one slice plane. A voxel belongs to the structure when
its centre is inside under the even-odd rule over *all* the structure's contours on that slice,
so a contour drawn inside another (a hole, or an island in the hole) toggles it, the way
treatment planning systems store holes. Contour edges are half-open: a voxel centre exactly on a
left/top edge is in, on a right/bottom edge out, so touching contours never double count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from adapters.dicom import attributes
from adapters.dicom.seg_reading import check_series_reference, parse_dicom
from adapters.dicom.source_grid import SourceGrid, place_sources, read_header
from domain.errors import InvalidInput
from domain.imaging import Volume
from domain.ports.segmentation import Structure

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
PLANE_TOLERANCE = 0.1
"""How far (in slice steps) a contour point may lie off the slice plane it is drawn on."""


def even_odd_crossings(
    columns: npt.NDArray[np.float64], rows: npt.NDArray[np.float64], shape: tuple[int, int]
) -> npt.NDArray[np.int32]:
    """Per pixel, how many edges of the closed polygon a ray from its centre towards ``-x``
    crosses; odd means inside.

    Args:
        columns, rows: the polygon's vertices as continuous ``(i, j)`` indices, pixel centres
            at integers.
        shape: ``(rows, columns)`` of the slice.

    Returns:
        int32 array of ``shape``; sums of several contours' crossings give the even-odd rule
        over all of them.
    """
    height, width = shape
    x0, y0 = columns, rows
    x1, y1 = np.roll(columns, -1), np.roll(rows, -1)
    toggles = np.zeros((height, width + 1), dtype=np.int32)
    low = max(0, math.ceil(float(rows.min())))
    high = min(height - 1, math.floor(float(rows.max())))
    for j in range(low, high + 1):
        crossing = ((y0 <= j) & (y1 > j)) | ((y1 <= j) & (y0 > j))
        if not crossing.any():
            continue
        a, b, c, d = x0[crossing], y0[crossing], x1[crossing], y1[crossing]
        at = a + (j - b) * (c - a) / (d - b)
        starts = np.clip(np.ceil(at), 0, width).astype(np.intp)
        np.add.at(toggles[j], starts, 1)
    counts: npt.NDArray[np.int32] = np.cumsum(toggles[:, :width], axis=1, dtype=np.int32)
    return counts


def _rtstruct_header(ds: Dataset) -> Dataset:
    sop_class = str(ds.SOPClassUID)
    if sop_class != RT_STRUCTURE_SET_STORAGE:
        raise InvalidInput(f"the file is not an RT Structure Set (SOP class {sop_class})")
    return ds


def _roi_names(ds: Dataset) -> dict[int, str]:
    names = {}
    for item in ds.get("StructureSetROISequence") or []:
        number = attributes.integer(item, "ROINumber")
        if number is not None:
            names[number] = attributes.text(item, "ROIName") or f"ROI {number}"
    return names


def _referenced_series(ds: Dataset) -> set[str]:
    return {
        str(series.SeriesInstanceUID)
        for frame in ds.get("ReferencedFrameOfReferenceSequence") or []
        for study in frame.get("RTReferencedStudySequence") or []
        for series in study.get("RTReferencedSeriesSequence") or []
        if series.get("SeriesInstanceUID")
    }


def _check_reference(ds: Dataset, grid: SourceGrid) -> None:
    referenced = _referenced_series(ds)
    check_series_reference(referenced, grid, what="RTSTRUCT")
    if referenced:
        return
    frames = {
        str(item.ReferencedFrameOfReferenceUID)
        for item in ds.get("StructureSetROISequence") or []
        if "ReferencedFrameOfReferenceUID" in item
    }
    if not frames:
        raise InvalidInput("the RTSTRUCT references no series and no frame of reference")
    if grid.frame_of_reference_uid not in frames:
        raise InvalidInput("the RTSTRUCT is in another frame of reference than the series")


def _contour_slice(
    volume: Volume, points: npt.NDArray[np.float64], *, name: str
) -> tuple[int, npt.NDArray[np.float64]]:
    indices = volume.patient_to_index(points)
    planes = indices[:, 2]
    k = int(np.rint(planes.mean()))
    if float(np.max(np.abs(planes - k))) > PLANE_TOLERANCE:
        raise InvalidInput(
            f"a contour of '{name}' does not lie on a slice plane of the series "
            f"(slice index {planes.min():.2f}..{planes.max():.2f})"
        )
    if not 0 <= k < volume.shape[0]:
        raise InvalidInput(f"a contour of '{name}' lies outside the series (slice {k})")
    return k, indices


def _rasterise(volume: Volume, contours: Sequence[Dataset], *, name: str) -> npt.NDArray[np.bool_]:
    # per slice, so a structure costs one boolean volume, not an int32 one
    crossings: dict[int, npt.NDArray[np.int32]] = {}
    for contour in contours:
        if attributes.text(contour, "ContourGeometricType") != "CLOSED_PLANAR":
            continue  # points and open polylines enclose nothing
        values = contour.get("ContourData") or []
        if len(values) < 9 or len(values) % 3:
            raise InvalidInput(f"a contour of '{name}' has {len(values)} coordinates")
        try:
            points = np.asarray([float(v) for v in values], dtype=np.float64).reshape(-1, 3)
        except ValueError as err:
            raise InvalidInput(f"a contour of '{name}' has a non-numeric coordinate") from err
        if not np.all(np.isfinite(points)):
            raise InvalidInput(f"a contour of '{name}' has a non-finite coordinate")
        k, indices = _contour_slice(volume, points, name=name)
        found = even_odd_crossings(indices[:, 0], indices[:, 1], volume.shape[1:])
        crossings[k] = crossings[k] + found if k in crossings else found
    mask = np.zeros(volume.shape, dtype=np.bool_)
    for k, counts in crossings.items():
        mask[k] = counts % 2 == 1
    return mask


class RtStructReader:
    """:class:`~domain.ports.segmentation.SegmentationReader` for RT Structure Sets
    (PS3.3 A.19): one :class:`Structure` per ROI of ``StructureSetROISequence``, in that
    order, named by ``ROIName`` (empty when the ROI has no closed contour)."""

    def referenced_series(self, data: bytes) -> frozenset[str]:
        ds = _rtstruct_header(read_header(data, what="segmentation file"))
        return frozenset(_referenced_series(ds))

    def read(self, data: bytes, source_files: Sequence[bytes], volume: Volume) -> list[Structure]:
        ds = _rtstruct_header(parse_dicom(data, what="segmentation file"))
        grid = place_sources(source_files, volume)
        _check_reference(ds, grid)
        names = _roi_names(ds)
        contours: dict[int, list[Dataset]] = {number: [] for number in names}
        for item in ds.get("ROIContourSequence") or []:
            number = attributes.integer(item, "ReferencedROINumber")
            if number in contours:
                contours[number].extend(item.get("ContourSequence") or [])
        return [
            Structure(name=names[n], mask=_rasterise(volume, contours[n], name=names[n]))
            for n in names
        ]
