"""Reading a DICOM SEG back onto its source series' grid, frame by frame from positions.

Every frame is placed where its own ``ImagePositionPatient`` says (per-frame Plane Position
functional group), so a SEG from any tool lines up with the volume however its frames are
ordered, and a SEG that covers only part of each slice (cropped frames) lands on the right
voxels. Binary, fractional (thresholded at half the maximum) and label-map SEGs are read.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom import dcmread
from pydicom.dataset import Dataset

from adapters.dicom import attributes
from adapters.dicom.source_grid import (
    SourceGrid,
    place_sources,
    read_header,
    same_plane,
    slice_at,
)
from domain.errors import InvalidInput
from domain.imaging import Volume
from domain.ports.segmentation import Structure

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
SEG_SOP_CLASSES = frozenset({SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE})


def parse_dicom(data: bytes, *, what: str) -> Dataset:
    """A whole DICOM file (pixel data included), or ``InvalidInput`` naming ``what``."""
    if not data:
        raise InvalidInput(f"the {what} is empty")
    try:
        ds = dcmread(io.BytesIO(data), force=True)
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


def check_series_reference(referenced: set[str], grid: SourceGrid, *, what: str) -> None:
    """Refuse an object that names series and not the source series."""
    if referenced and grid.series_instance_uid not in referenced:
        raise InvalidInput(
            f"the {what} references another series ({', '.join(sorted(referenced))}), "
            "not the study series it is measured on"
        )


def _frame_item(ds: Dataset, sequence: str, frame: int) -> Dataset | None:
    return attributes.functional_group(ds, sequence, frame)


def _segment_of(ds: Dataset, frame: int) -> int:
    item = _frame_item(ds, "SegmentIdentificationSequence", frame)
    number = attributes.integer(item, "ReferencedSegmentNumber") if item is not None else None
    if number is None:
        raise InvalidInput(f"SEG frame {frame + 1} names no ReferencedSegmentNumber (0062,000B)")
    return number


def _frames(ds: Dataset) -> npt.NDArray[np.generic]:
    try:
        pixels = np.asarray(ds.pixel_array)
    except MemoryError:
        raise
    except Exception as err:  # undecodable or truncated pixel data
        raise InvalidInput(f"the SEG's pixel data cannot be decoded: {err}") from err
    count = attributes.integer(ds, "NumberOfFrames") or 1
    return pixels.reshape(count, int(ds.Rows), int(ds.Columns))


def _check_plane(ds: Dataset, volume: Volume, frame: int) -> None:
    orientation_item = _frame_item(ds, "PlaneOrientationSequence", frame)
    orientation = (
        attributes.numbers(orientation_item, "ImageOrientationPatient", 6)
        if orientation_item is not None
        else None
    )
    if not same_plane(volume, orientation):
        raise InvalidInput(f"SEG frame {frame + 1} is not in the image plane of the series")
    measures = _frame_item(ds, "PixelMeasuresSequence", frame)
    spacing = attributes.numbers(measures, "PixelSpacing", 2) if measures is not None else None
    if spacing is None or not np.allclose(spacing, volume.spacing[1:], rtol=1e-3):
        raise InvalidInput(
            f"SEG frame {frame + 1} has PixelSpacing {spacing}, the series {volume.spacing[1:]}"
        )


def _paste(target: npt.NDArray[np.bool_], frame: npt.NDArray[np.bool_], i0: int, j0: int) -> None:
    """OR ``frame`` into ``target`` (one slice) with its first pixel at column i0, row j0."""
    rows, columns = target.shape
    top, left = max(j0, 0), max(i0, 0)
    bottom, right = min(j0 + frame.shape[0], rows), min(i0 + frame.shape[1], columns)
    if bottom <= top or right <= left:
        return
    target[top:bottom, left:right] |= frame[top - j0 : bottom - j0, left - i0 : right - i0]


def _seg_header(ds: Dataset) -> Dataset:
    sop_class = str(ds.SOPClassUID)
    if sop_class not in SEG_SOP_CLASSES:
        raise InvalidInput(f"the file is not a DICOM SEG (SOP class {sop_class})")
    return ds


def _seg_references(ds: Dataset) -> set[str]:
    return {
        str(item.SeriesInstanceUID)
        for item in ds.get("ReferencedSeriesSequence") or []
        if item.get("SeriesInstanceUID")
    }


class HighdicomSegmentationReader:
    """:class:`~domain.ports.segmentation.SegmentationReader` for DICOM SEG (PS3.3 A.51).

    One :class:`Structure` per segment of ``SegmentSequence`` (named by ``SegmentLabel``),
    empty when the SEG has no frame for it.
    """

    def referenced_series(self, data: bytes) -> frozenset[str]:
        return frozenset(_seg_references(_seg_header(read_header(data, what="segmentation file"))))

    def read(self, data: bytes, source_files: Sequence[bytes], volume: Volume) -> list[Structure]:
        ds = _seg_header(parse_dicom(data, what="segmentation file"))
        grid = place_sources(source_files, volume)
        referenced = _seg_references(ds)
        check_series_reference(referenced, grid, what="SEG")
        if not referenced and attributes.text(ds, "FrameOfReferenceUID") not in (
            None,
            grid.frame_of_reference_uid,
        ):
            raise InvalidInput("the SEG is in another frame of reference than the series")
        try:
            seg = hd.seg.Segmentation.from_dataset(ds)
            numbers = list(seg.segment_numbers)
            names = {n: seg.get_segment_description(n).segment_label for n in numbers}
        except MemoryError:
            raise
        except Exception as err:  # highdicom validates the Segmentation modules it needs
            raise InvalidInput(f"the SEG cannot be read: {err}") from err
        masks = {n: np.zeros(volume.shape, dtype=np.bool_) for n in numbers}
        pixels = _frames(ds)
        labelmap = attributes.text(ds, "SegmentationType") == "LABELMAP"
        threshold = 0
        if attributes.text(ds, "SegmentationType") == "FRACTIONAL":
            threshold = (attributes.integer(ds, "MaximumFractionalValue") or 255) // 2
        for index, frame in enumerate(pixels):
            _check_plane(ds, volume, index)
            plane = _frame_item(ds, "PlanePositionSequence", index)
            position = (
                attributes.numbers(plane, "ImagePositionPatient", 3) if plane is not None else None
            )
            if position is None:
                raise InvalidInput(f"SEG frame {index + 1} has no ImagePositionPatient")
            i0, j0, k = slice_at(volume, position, what=f"SEG frame {index + 1}")
            if labelmap:
                for number in numbers:
                    _paste(masks[number][k], frame == number, i0, j0)
                continue
            number = _segment_of(ds, index)
            if number not in masks:
                raise InvalidInput(f"SEG frame {index + 1} names segment {number}, not described")
            _paste(masks[number][k], frame > threshold, i0, j0)
        return [Structure(name=str(names[n]), mask=masks[n]) for n in numbers]
