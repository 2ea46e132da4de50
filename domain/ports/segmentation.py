"""Ports for segmentation objects: writing a DICOM SEG for a label map on a series' grid, and
reading a SEG or RTSTRUCT back into masks on that grid.

Both sides speak about the *source grid*: the volume assembled from the referenced series, axis
order ``(z, y, x)`` with slices sorted along the normal (:class:`~domain.imaging.Volume`). The
adapters place frames by patient position (``ImagePositionPatient`` projected on the slice
normal), never by list order, so a SEG written here and re-read anywhere lines up voxel by
voxel with the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from domain.imaging.geometry import Volume


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """One labelled structure of a label map (``number`` is its value in the map, 1..n)."""

    number: int
    label: str
    description: str = ""


class SegmentationSource(msgspec.Struct, frozen=True, kw_only=True):
    """What a SEG is derived from and describes: the source series' files as stored."""

    files: tuple[bytes, ...]
    series_description: str = "AI segmentation"
    algorithm_name: str
    algorithm_version: str


class Structure(msgspec.Struct, frozen=True, kw_only=True):
    """A structure read from a SEG or RTSTRUCT, rasterised onto the source grid."""

    name: str
    mask: npt.NDArray[np.bool_]
    """Boolean ``(z, y, x)`` on the volume's grid."""


class SegmentationWriter(Protocol):
    def write(
        self,
        source: SegmentationSource,
        volume: Volume,
        labels: npt.NDArray[np.uint16],
        segments: Sequence[Segment],
    ) -> bytes:
        """A DICOM SEG (Part 10 bytes) of ``labels`` (``(z, y, x)`` on ``volume``'s grid, 0 =
        background) that references the source series. Raises ``InvalidInput`` when the
        sources cannot carry a SEG (no DICOM, mismatched grid)."""


class SegmentationReader(Protocol):
    def referenced_series(self, data: bytes) -> frozenset[str]:
        """The ``SeriesInstanceUID``s the segmentation file says it was drawn on (empty when
        it names none, e.g. an RTSTRUCT that gives only its frame of reference), so a caller
        can find the source series among a study's. Raises ``InvalidInput`` for a file that is
        not a segmentation this reader reads."""

    def read(self, data: bytes, source_files: Sequence[bytes], volume: Volume) -> list[Structure]:
        """The structures of a DICOM SEG or RTSTRUCT (Part 10 ``data``) on ``volume``'s grid,
        built from ``source_files``. RTSTRUCT contours are rasterised slice by slice. Raises
        ``InvalidInput`` for a file that is neither, or that references another series."""
