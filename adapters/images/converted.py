"""Images converted from NIfTI, PNG and JPEG: frames, a volume, and generated identifiers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from adapters.dicom.header import header_json
from domain.imaging import (
    SECONDARY_CAPTURE_IMAGE_STORAGE,
    Frames,
    ImageFields,
    ImageFormat,
    InstanceFields,
    SeriesFields,
    StudyFields,
    Volume,
)
from domain.studies import Modality

_DICOM_MODALITY = {
    Modality.CT: "CT",
    Modality.MR: "MR",
    Modality.XRAY: "DX",
    Modality.US: "US",
    Modality.PET: "PT",
    Modality.NM: "NM",
    Modality.OTHER: "OT",
}


@dataclass(frozen=True, eq=False)
class ConvertedImage:
    """A non-DICOM image read into the same shape as a :class:`adapters.dicom.DicomImage`.

    Attributes:
        format: NIFTI, PNG or JPEG.
        fields: generated Study/Series/SOP Instance UIDs (one study, one series, one instance),
            sizes, geometry and a small synthetic DICOM JSON header.
        volume: the image in patient space (NIfTI: its own affine; PNG/JPEG: one slice, 1 mm
            pixels, identity direction, origin 0).
        decoded: the frames to render: the volume's slices, or the picture's one frame in
            color when it has color.
    """

    format: ImageFormat
    fields: ImageFields
    volume: Volume
    decoded: Frames

    def frames(self) -> Frames:
        return self.decoded


def synthetic_fields(
    *,
    format: ImageFormat,
    volume: Volume,
    frames: Frames,
    modality: Modality = Modality.OTHER,
) -> ImageFields:
    """Fields for a converted image: fresh UIDs (``pydicom.uid.generate_uid``), the Secondary
    Capture SOP class, and the geometry of ``volume`` for NIfTI (none for PNG/JPEG, whose
    pixels have no physical size)."""
    study_uid, series_uid, sop_uid = generate_uid(), generate_uid(), generate_uid()
    spacing_z, spacing_y, spacing_x = volume.spacing
    has_geometry = format is ImageFormat.NIFTI
    direction = volume.direction
    pixel_spacing = (spacing_y, spacing_x) if has_geometry else None
    position = volume.origin if has_geometry else None
    orientation = (
        tuple(float(v) for v in (*direction[:, 0], *direction[:, 1])) if has_geometry else None
    )
    photometric = frames.photometric_interpretation
    description = f"converted from {format.value.upper()}"
    ds = Dataset()
    ds.SOPClassUID = SECONDARY_CAPTURE_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = _DICOM_MODALITY[modality]
    ds.ConversionType = "WSD"
    ds.SeriesDescription = description
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = frames.rows, frames.columns
    ds.NumberOfFrames = frames.number_of_frames
    ds.SamplesPerPixel = 3 if frames.is_color else 1
    ds.PhotometricInterpretation = photometric
    if has_geometry:
        ds.PixelSpacing = [round(spacing_y, 6), round(spacing_x, 6)]
        ds.SliceThickness = round(spacing_z, 6)
        ds.ImagePositionPatient = [round(v, 6) for v in volume.origin]
        ds.ImageOrientationPatient = [round(float(v), 6) for v in orientation or ()]
    return ImageFields(
        study=StudyFields(study_instance_uid=study_uid, modality=modality),
        series=SeriesFields(
            series_instance_uid=series_uid,
            modality=modality,
            series_number=1,
            description=description,
        ),
        instance=InstanceFields(
            sop_instance_uid=sop_uid,
            sop_class_uid=SECONDARY_CAPTURE_IMAGE_STORAGE,
            format=format,
            instance_number=1,
            rows=frames.rows,
            columns=frames.columns,
            number_of_frames=frames.number_of_frames,
            samples_per_pixel=3 if frames.is_color else 1,
            photometric_interpretation=photometric,
            pixel_spacing=pixel_spacing,
            slice_thickness=spacing_z if has_geometry else None,
            image_position_patient=position,
            image_orientation_patient=orientation,  # type: ignore[arg-type]
            window=frames.window,
        ),
        header=header_json(ds),
    )


def flat_volume(pixels: np.ndarray, problems: tuple = ()) -> Volume:  # type: ignore[type-arg]
    """One slice of ``(rows, columns)`` values on a 1 mm grid, identity direction, origin 0."""
    return Volume(
        voxels=np.asarray(pixels, dtype=np.float32)[np.newaxis],
        spacing=(1.0, 1.0, 1.0),
        direction=np.eye(3),
        origin=(0.0, 0.0, 0.0),
        problems=problems,
    )
