"""One reader for whichever segmentation object a user uploads: SEG or RTSTRUCT."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.dicom.rtstruct import RT_STRUCTURE_SET_STORAGE, RtStructReader
from adapters.dicom.seg_reading import SEG_SOP_CLASSES, HighdicomSegmentationReader
from adapters.dicom.source_grid import read_header
from domain.errors import InvalidInput
from domain.imaging import Volume
from domain.ports.segmentation import Structure


class DicomSegmentationReader:
    """:class:`~domain.ports.segmentation.SegmentationReader` that reads a DICOM SEG with
    :class:`HighdicomSegmentationReader` and an RT Structure Set with :class:`RtStructReader`,
    chosen by ``SOPClassUID``."""

    def __init__(self) -> None:
        self._seg = HighdicomSegmentationReader()
        self._rtstruct = RtStructReader()

    def referenced_series(self, data: bytes) -> frozenset[str]:
        return self._reader_for(data).referenced_series(data)

    def read(self, data: bytes, source_files: Sequence[bytes], volume: Volume) -> list[Structure]:
        return self._reader_for(data).read(data, source_files, volume)

    def _reader_for(self, data: bytes) -> HighdicomSegmentationReader | RtStructReader:
        sop_class = str(read_header(data, what="segmentation file").SOPClassUID)
        if sop_class in SEG_SOP_CLASSES:
            return self._seg
        if sop_class == RT_STRUCTURE_SET_STORAGE:
            return self._rtstruct
        raise InvalidInput(
            f"the file is neither a DICOM SEG nor an RT Structure Set (SOP class {sop_class})"
        )
