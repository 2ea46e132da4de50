"""Placing the frames of a source series on a volume's slices by patient position.

A segmentation is only as good as its alignment: a SEG whose frames are written in file order,
or a reader that trusts list order, shows the mask on the wrong slice or flipped. Everything
here goes through ``ImagePositionPatient`` (per frame for enhanced multi-frame images) and the
volume's affine, never through the order of files or frames.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom import dcmread
from pydicom.dataset import Dataset

from adapters.dicom import attributes
from adapters.dicom.pixels import frame_geometries
from domain.errors import InvalidInput
from domain.imaging import Volume

ORIENTATION_TOLERANCE = 1e-3
"""Largest difference between direction cosines that still counts as the same plane."""
POSITION_TOLERANCE = 0.05
"""Largest distance, as a fraction of the smallest voxel spacing, between a frame's position and
the voxel it is placed on."""


@dataclass(frozen=True, eq=False)
class SourceFrame:
    """One frame of a source instance and the volume slice it lies on.

    Attributes:
        dataset: the instance's header (pixel data not read).
        frame_number: 1-based frame number within the instance (1 for single-frame images).
        slice_index: ``k``, the volume slice at the frame's ``ImagePositionPatient``.
    """

    dataset: Dataset
    frame_number: int
    slice_index: int


@dataclass(frozen=True, eq=False)
class SourceGrid:
    """The source series of a volume with each of its frames placed on one slice.

    Attributes:
        datasets: the instances' headers, as given.
        frames: one entry per volume slice, in slice order (``frames[k].slice_index == k``).
        series_instance_uid: the series all instances belong to.
        frame_of_reference_uid: their ``FrameOfReferenceUID`` ("" when absent).
    """

    datasets: tuple[Dataset, ...]
    frames: tuple[SourceFrame, ...]
    series_instance_uid: str
    frame_of_reference_uid: str

    @property
    def sop_instance_uids(self) -> frozenset[str]:
        return frozenset(str(ds.SOPInstanceUID) for ds in self.datasets)


def read_header(data: bytes, *, what: str) -> Dataset:
    """The header of one Part 10 (or raw) DICOM file, without its pixel data.

    Raises:
        InvalidInput: ``data`` is empty or not readable as DICOM; ``what`` names the file.
    """
    if not data:
        raise InvalidInput(f"the {what} is empty")
    try:
        ds = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        sop_class = ds.get("SOPClassUID")
    except MemoryError:
        raise
    except Exception as err:  # pydicom raises many types on malformed bytes
        raise InvalidInput(
            f"the {what} is not a readable DICOM file: {type(err).__name__}"
        ) from err
    if not sop_class:
        raise InvalidInput(f"the {what} is not a DICOM file (no SOPClassUID (0008,0016))")
    return ds


def voxel_tolerance_mm(volume: Volume) -> float:
    return POSITION_TOLERANCE * min(volume.spacing)


def same_plane(volume: Volume, orientation: Sequence[float] | None) -> bool:
    """Whether ``ImageOrientationPatient`` values are the volume's row and column cosines."""
    if orientation is None or len(orientation) != 6:
        return False
    expected = np.concatenate([volume.direction[:, 0], volume.direction[:, 1]])
    return bool(np.max(np.abs(np.asarray(orientation, dtype=np.float64) - expected)) <= 1e-3)


def slice_at(volume: Volume, position: npt.ArrayLike, *, what: str) -> tuple[int, int, int]:
    """The voxel ``(i, j, k)`` whose centre is at ``position`` (LPS mm).

    Raises:
        InvalidInput: the position is not on a voxel centre of the volume's grid (within
            :data:`POSITION_TOLERANCE`) or lies outside the volume; ``what`` names it.
    """
    index = volume.patient_to_index(np.asarray(position, dtype=np.float64))
    rounded = np.rint(index)
    snapped = volume.index_to_patient(rounded)
    distance = float(np.linalg.norm(snapped - np.asarray(position, dtype=np.float64)))
    if distance > voxel_tolerance_mm(volume):
        raise InvalidInput(
            f"{what} at {np.round(np.asarray(position, dtype=np.float64), 3).tolist()} mm is "
            f"{distance:.3f} mm off the series' voxel grid"
        )
    i, j, k = (int(v) for v in rounded)
    if not 0 <= k < volume.shape[0]:
        raise InvalidInput(f"{what} lies outside the series (slice {k} of {volume.shape[0]})")
    return i, j, k


def place_sources(files: Sequence[bytes], volume: Volume) -> SourceGrid:
    """Place every frame of the source files on the volume slice at its position.

    Args:
        files: the stored files of the volume's series, in any order.
        volume: the volume assembled from them.

    Raises:
        InvalidInput: no files, a file that is not DICOM, several series, frames without a
            position or in another plane, or frames that do not cover each slice exactly once
            (a resampled volume, or files of another grid).
    """
    if not files:
        raise InvalidInput("a segmentation needs the DICOM files of its source series")
    datasets = tuple(read_header(data, what="source file") for data in files)
    series = {attributes.text(ds, "SeriesInstanceUID") or "" for ds in datasets}
    if len(series) != 1 or "" in series:
        raise InvalidInput(
            f"the source files belong to {len(series)} series; a segmentation references one"
        )
    frames: dict[int, SourceFrame] = {}
    for ds in datasets:
        count = attributes.integer(ds, "NumberOfFrames") or 1
        for number, geometry in enumerate(frame_geometries(ds, count), start=1):
            what = f"frame {number} of source instance {attributes.text(ds, 'SOPInstanceUID')}"
            if geometry.image_position_patient is None:
                raise InvalidInput(f"{what} has no ImagePositionPatient (0020,0032)")
            if (geometry.rows, geometry.columns) != volume.shape[1:]:
                raise InvalidInput(
                    f"{what} is {geometry.rows}x{geometry.columns}, the volume's slices "
                    f"{volume.shape[1]}x{volume.shape[2]}"
                )
            if not same_plane(volume, geometry.image_orientation_patient):
                raise InvalidInput(f"{what} is not in the volume's image plane")
            i, j, k = slice_at(volume, geometry.image_position_patient, what=what)
            if (i, j) != (0, 0):
                raise InvalidInput(f"{what} is shifted by ({i}, {j}) voxels in its plane")
            if k in frames:
                raise InvalidInput(f"two source frames lie on slice {k} of the volume")
            frames[k] = SourceFrame(dataset=ds, frame_number=number, slice_index=k)
    missing = [k for k in range(volume.shape[0]) if k not in frames]
    if missing:
        raise InvalidInput(
            f"{len(missing)} slice(s) of the volume have no source frame (first: {missing[0]}); "
            "the volume does not match its source files one to one"
        )
    first = datasets[0]
    return SourceGrid(
        datasets=datasets,
        frames=tuple(frames[k] for k in range(volume.shape[0])),
        series_instance_uid=series.pop(),
        frame_of_reference_uid=attributes.text(first, "FrameOfReferenceUID") or "",
    )
