"""DICOM SEG writing with highdicom: a label map on a series' grid -> one binary SEG.

Frames are placed by patient position (:func:`adapters.dicom.source_grid.place_sources`): each
volume slice goes with the source frame whose ``ImagePositionPatient`` lies on it, so a SEG
written for a series uploaded in any file order, with slices stored head-first or feet-first,
oblique, or as one enhanced multi-frame instance, lines up with the source in every viewer.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Sequence

import highdicom as hd
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from adapters.dicom.source_grid import SourceGrid, place_sources
from domain.errors import InvalidInput
from domain.imaging import Volume
from domain.ports.segmentation import Segment, SegmentationSource

TYPE2_DEFAULTS = {
    "PatientName": "",
    "PatientID": "",
    "PatientBirthDate": "",
    "PatientSex": "",
    "StudyID": "",
    "StudyDate": "",
    "StudyTime": "",
    "ReferringPhysicianName": "",
    "AccessionNumber": "",
}
"""Type 2 attributes a SEG copies from its source; many archives' files lack some of them."""


def _with_type2(ds: Dataset) -> Dataset:
    missing = {keyword: v for keyword, v in TYPE2_DEFAULTS.items() if keyword not in ds}
    if not missing:
        return ds
    # a copy: the caller's parsed headers stay as stored
    filled = copy.copy(ds)
    for keyword, v in missing.items():
        setattr(filled, keyword, v)
    return filled


def _check_labels(
    volume: Volume, labels: npt.NDArray[np.uint16], segments: Sequence[Segment]
) -> npt.NDArray[np.uint16]:
    if not segments:
        raise InvalidInput(
            "a DICOM SEG needs at least one segment; with nothing found, skip the SEG"
        )
    numbers = sorted(segment.number for segment in segments)
    if numbers != list(range(1, len(segments) + 1)):
        raise InvalidInput(f"segment numbers must be 1..{len(segments)}, got {numbers}")
    array = np.asarray(labels)
    if array.shape != volume.shape:
        raise InvalidInput(f"the label map is {array.shape}, the volume {volume.shape} (z, y, x)")
    if not np.issubdtype(array.dtype, np.integer) or (array.size and int(array.min()) < 0):
        raise InvalidInput(f"the label map must hold non-negative integers, got {array.dtype}")
    highest = int(array.max()) if array.size else 0
    if highest > len(segments):
        raise InvalidInput(f"label {highest} has no segment (segments 1..{len(segments)})")
    return array.astype(np.uint16, copy=False)


def _source_layout(
    grid: SourceGrid, labels: npt.NDArray[np.uint16]
) -> tuple[list[Dataset], npt.NDArray[np.uint16]]:
    """The source images in the order highdicom reads them and the label frames to match."""
    if all((ds.get("NumberOfFrames") or 1) == 1 for ds in grid.datasets):
        # single-frame images: source image n is the frame of slice n
        return [_with_type2(frame.dataset) for frame in grid.frames], labels
    if len(grid.datasets) != 1:
        raise InvalidInput(
            f"the source series has {len(grid.datasets)} multi-frame instances; a SEG can "
            "reference the frames of one"
        )
    # one enhanced instance: highdicom pairs label frame f with source frame f+1
    order = np.empty(len(grid.frames), dtype=np.intp)
    for frame in grid.frames:
        order[frame.frame_number - 1] = frame.slice_index
    return [_with_type2(grid.datasets[0])], labels[order]


class HighdicomSegmentationWriter:
    """:class:`~domain.ports.segmentation.SegmentationWriter` producing a binary DICOM SEG.

    One segment per structure, each a "Neoplasm" (SCT 108369006) of category "Morphologically
    abnormal structure" (SCT 49755003) found by an AUTOMATIC algorithm identified by the
    source's ``algorithm_name``/``algorithm_version`` (family: artificial intelligence). Empty
    frames are left out, except that a SEG whose label map is all background keeps every
    frame (a SEG needs one). With no segments at all there is nothing to describe: ``write``
    raises ``InvalidInput`` and the caller stores no SEG.

    Args:
        manufacturer: ``Manufacturer`` of the SEG (the equipment that made it).
        model_name: ``ManufacturerModelName``.
        software_version: ``SoftwareVersions``.
        series_number: ``SeriesNumber`` of the new SEG series.
    """

    def __init__(
        self,
        *,
        manufacturer: str = "Hounsfield",
        model_name: str = "Hounsfield analysis",
        software_version: str = "0.1",
        series_number: int = 900,
    ) -> None:
        self._manufacturer = manufacturer
        self._model_name = model_name
        self._software_version = software_version
        self._series_number = series_number

    def write(
        self,
        source: SegmentationSource,
        volume: Volume,
        labels: npt.NDArray[np.uint16],
        segments: Sequence[Segment],
    ) -> bytes:
        checked = _check_labels(volume, labels, segments)
        grid = place_sources(source.files, volume)
        images, frames = _source_layout(grid, checked)
        algorithm = hd.AlgorithmIdentificationSequence(
            name=source.algorithm_name,
            version=source.algorithm_version,
            family=codes.cid7162.ArtificialIntelligence,
        )
        descriptions = []
        for segment in sorted(segments, key=lambda s: s.number):
            description = hd.seg.SegmentDescription(
                segment_number=segment.number,
                segment_label=segment.label[:64],
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=codes.SCT.Neoplasm,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
            )
            if segment.description:
                description.SegmentDescription = segment.description[:64]
            descriptions.append(description)
        try:
            seg = hd.seg.Segmentation(
                source_images=images,
                pixel_array=frames,
                segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
                segment_descriptions=descriptions,
                series_instance_uid=hd.UID(),
                series_number=self._series_number,
                sop_instance_uid=hd.UID(),
                instance_number=1,
                manufacturer=self._manufacturer,
                manufacturer_model_name=self._model_name,
                software_versions=self._software_version,
                device_serial_number="0",
                content_label="LESIONS",
                content_description=source.series_description[:64],
            )
        except (ValueError, TypeError, AttributeError) as err:
            # highdicom checks the sources' modules (series, frame of reference, dimensions)
            raise InvalidInput(f"the source series cannot carry a DICOM SEG: {err}") from err
        seg.SeriesDescription = source.series_description[:64]
        buffer = io.BytesIO()
        seg.save_as(buffer)
        return buffer.getvalue()
