"""DICOM through pydicom: reading and validating files, header JSON, pixel decoding, series
assembly into volumes."""

from adapters.dicom.header import header_json
from adapters.dicom.pixels import decode_frames, frame_geometries
from adapters.dicom.reading import DicomImage, is_dicom_part10, read_dicom
from adapters.dicom.series import assemble_series

__all__ = [
    "DicomImage",
    "assemble_series",
    "decode_frames",
    "frame_geometries",
    "header_json",
    "is_dicom_part10",
    "read_dicom",
]
