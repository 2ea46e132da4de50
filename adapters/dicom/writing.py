"""Writing CT series as DICOM Part 10 files from Hounsfield-unit arrays.

Used by ``hounsfield demo`` to turn a synthetic phantom into a series any viewer opens, and by
the tests to make series of known geometry. Stored values are int16 with a rescale intercept
of -1024, explicit VR little endian, one frame of reference per series as scanners write it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

RESCALE_INTERCEPT = -1024.0
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _ds(value: float) -> str:
    """A DS string (at most 16 characters) for ``value``."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text


def ct_slice_dataset(
    *,
    hu: npt.NDArray[np.float32],
    position: tuple[float, float, float],
    orientation: tuple[float, float, float, float, float, float],
    pixel_spacing: tuple[float, float],
    slice_thickness: float,
    instance_number: int,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
    window: tuple[float, float] | None = (40.0, 400.0),
    frame_of_reference_uid: str | None = None,
    patient_name: str = "Phantom^Synthetic",
    patient_id: str = "SYN-0001",
    study_description: str = "Synthetic CT phantom",
) -> Dataset:
    """One CT Image Storage dataset of one ``(rows, columns)`` HU slice."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_instance_uid
    ds.StudyInstanceUID = study_instance_uid
    ds.SeriesInstanceUID = series_instance_uid
    ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
    ds.Modality = "CT"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientSex = "O"
    ds.PatientAge = "042Y"
    ds.PatientBirthDate = "19840229"
    ds.StudyDate = "20260115"
    ds.AccessionNumber = "ACC-1"
    ds.StudyDescription = study_description
    ds.SeriesDescription = f"axial {_ds(slice_thickness)} mm"
    ds.SeriesNumber = 3
    ds.BodyPartExamined = "CHEST"
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [_ds(v) for v in position]
    ds.ImageOrientationPatient = [_ds(v) for v in orientation]
    ds.PixelSpacing = [_ds(v) for v in pixel_spacing]
    ds.SliceThickness = _ds(slice_thickness)
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = _ds(RESCALE_INTERCEPT)
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    if window is not None:
        ds.WindowCenter = _ds(window[0])
        ds.WindowWidth = _ds(window[1])
    stored = np.rint(hu - RESCALE_INTERCEPT).astype("<i2")
    ds.PixelData = stored.tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_series_from_hu(
    hu: npt.NDArray[np.float32],
    *,
    spacing_mm: Sequence[float],
    origin_lps: Sequence[float],
    study_instance_uid: str | None = None,
    patient_name: str = "Phantom^Synthetic",
    patient_id: str = "SYN-0001",
    study_description: str = "Synthetic CT phantom",
) -> list[bytes]:
    """Axial CT Part 10 files, one per ``(z, y, x)`` slice of ``hu``: slice ``k`` at
    ``origin + k * spacing_z`` along +z (LPS), rows along +y, columns along +x. HU values are
    clipped to what int16 with the -1024 intercept stores faithfully (-1024..3000)."""
    study_uid, series_uid = study_instance_uid or generate_uid(), generate_uid()
    frame_of_reference = generate_uid()
    dz, dy, dx = (float(v) for v in spacing_mm)
    x, y, z = (float(v) for v in origin_lps)
    return [
        to_bytes(
            ct_slice_dataset(
                hu=np.clip(hu[k], -1024, 3000),
                position=(x, y, z + k * dz),
                orientation=AXIAL,
                pixel_spacing=(dy, dx),
                slice_thickness=dz,
                instance_number=k + 1,
                study_instance_uid=study_uid,
                series_instance_uid=series_uid,
                sop_instance_uid=generate_uid(),
                frame_of_reference_uid=frame_of_reference,
                patient_name=patient_name,
                patient_id=patient_id,
                study_description=study_description,
            )
        )
        for k in range(hu.shape[0])
    ]
